//! `mgrctl scale RUN ROLE=N` (or `RUN N` for a run of one role): mirrors
//! the `Scale` RPC.

use std::io::Write;

use crate::client::Client;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  mgrctl scale lab receiver=5     two more receivers (p7, p8) while the client runs
  mgrctl scale lab receiver=2     the last ones stop and leave the table
  mgrctl scale chat 4             a run of one role: a fourth chat node

New instances get the next names and addresses, on the members that host
the role; every instance of the run gets the new table (MGR_PEERS for the
new ones, a `peers` line on the control pipe for the others: see
modules/README.md). Modules with a fixed set of processes (the book's) refuse.")]
pub struct ScaleArgs {
    /// The run to scale.
    #[arg(value_name = "RUN")]
    pub run: String,
    /// ROLE=N, or N for a run launched with `launch`/`exec` (one role).
    #[arg(value_name = "ROLE=N|N")]
    pub count: String,
}

/// `ROLE=N` or `N`, as (role, count).
fn parse(text: &str) -> anyhow::Result<(String, u32)> {
    let (role, count) = match text.split_once('=') {
        Some((role, count)) if !role.is_empty() => (role.to_owned(), count),
        Some(_) => anyhow::bail!("'{text}' has no role before '=' (ROLE=N, or N)"),
        None => (String::new(), text),
    };
    match count.parse::<u32>() {
        Ok(n) if n > 0 => Ok((role, n)),
        _ => anyhow::bail!("'{count}' is not a count of at least 1 (ROLE=N, or N)"),
    }
}

pub async fn scale(mut client: Client, args: ScaleArgs) -> anyhow::Result<u8> {
    let (role, count) = parse(&args.count)?;
    let request = mgr_proto::ScaleRequest { run: args.run.clone(), role: role.clone(), count };
    let reply = client.scale(request).await.map_err(super::status)?.into_inner();
    let mut out = crate::stdout::lock();
    let what = if role.is_empty() { args.run.clone() } else { format!("{}: {role}", args.run) };
    match (reply.added.is_empty(), reply.removed.is_empty()) {
        (true, true) => writeln!(out, "{what}: already {count} instance(s)")?,
        (false, _) => {
            let added: Vec<String> =
                reply.added.iter().map(|i| format!("{}@{} {}", i.name, i.member, i.address)).collect();
            writeln!(out, "{what} → {count}: started {}", added.join(", "))?;
        }
        (true, false) => writeln!(out, "{what} → {count}: stopped {}", reply.removed.join(", "))?,
    }
    out.flush()?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_is_role_equals_n_or_n() {
        assert_eq!(parse("receiver=5").unwrap(), ("receiver".to_owned(), 5));
        assert_eq!(parse("4").unwrap(), (String::new(), 4));
        assert!(parse("receiver=0").unwrap_err().to_string().contains("at least 1"));
        assert!(parse("=3").unwrap_err().to_string().contains("no role"));
        assert!(parse("receiver").is_err());
    }
}
