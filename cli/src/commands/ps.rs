//! `mgrctl ps [RUN]`: mirrors the `Ps` RPC.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use mgr_proto::Instance;

use crate::client::Client;

#[derive(Debug, clap::Args)]
#[command(after_help = "Examples:
  mgrctl ps
  mgrctl ps r1 --json | jq -r '.instance + \" \" + .state'

UPTIME is how long the instance's current process has run (- once it ended);
RESTARTS counts its starts after the first (by `mgrctl restart` or by
--restart on-failure).")]
pub struct PsArgs {
    /// Only this run.
    pub run: Option<String>,
    /// One JSON object per instance.
    #[arg(long)]
    pub json: bool,
}

/// How an instance ended, as shown in the EXIT column.
pub fn exit_text(i: &Instance) -> String {
    match (i.exit_code, i.signal) {
        (Some(code), _) => code.to_string(),
        (None, Some(signal)) => {
            nix::sys::signal::Signal::try_from(signal).map_or(format!("signal {signal}"), |s| s.as_str().to_owned())
        }
        _ => "-".to_owned(),
    }
}

/// How long the instance's process has run, `-` when none runs: `42s`,
/// `5m12s`, `2h03m`, `3d04h`.
pub fn uptime_text(i: &Instance, now_ms: u64) -> String {
    if !matches!(i.state.as_str(), "running" | "paused") || i.started_ms == 0 {
        return "-".to_owned();
    }
    // Another member's clock may be a little ahead of ours.
    let secs = now_ms.saturating_sub(i.started_ms) / 1000;
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{:02}s", secs / 60, secs % 60),
        3600..86400 => format!("{}h{:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d{:02}h", secs / 86400, secs % 86400 / 3600),
    }
}

pub async fn ps(mut client: Client, args: PsArgs) -> anyhow::Result<u8> {
    let run = args.run.unwrap_or_default();
    let reply = match client.ps(mgr_proto::PsRequest { run: run.clone(), local: false }).await {
        Ok(reply) => reply.into_inner(),
        Err(status) => return Err(crate::suggest::target(&mut client, &run, status).await),
    };
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0);
    let mut out = crate::stdout::lock();
    let mut table = crate::table::new(
        &["RUN", "INSTANCE", "MEMBER", "ADDRESS", "PID", "STATE", "UPTIME", "RESTARTS", "EXIT", "MODULE"],
        &["PID", "UPTIME", "RESTARTS"],
    );
    for run in reply.runs {
        for i in &run.instances {
            // In a run of several roles each instance runs its role's module.
            let module = if i.module.is_empty() { &run.module } else { &i.module };
            let restarts = i.starts.saturating_sub(1);
            if args.json {
                let value = serde_json::json!({
                    "run": i.run, "instance": i.name, "member": i.member, "member_id": i.member_id, "address": i.address,
                    "pid": i.pid, "state": i.state, "exit_code": i.exit_code, "signal": i.signal,
                    "starts": i.starts, "restarts": restarts, "started_ms": i.started_ms,
                    "last_seq": i.last_seq, "module": module, "role": i.role,
                    "detail": i.detail,
                });
                writeln!(out, "{value}")?;
            } else {
                table.add_row(vec![
                    i.run.clone(),
                    i.name.clone(),
                    i.member.clone(),
                    i.address.clone(),
                    if i.pid == 0 { "-".to_owned() } else { i.pid.to_string() },
                    if i.detail.is_empty() { i.state.clone() } else { format!("{} ({})", i.state, i.detail) },
                    uptime_text(i, now),
                    restarts.to_string(),
                    exit_text(i),
                    if i.role.is_empty() { module.clone() } else { format!("{module} ({})", i.role) },
                ]);
            }
        }
    }
    if !args.json {
        out.write_all(crate::table::render(&table).as_bytes())?;
    }
    out.flush()?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime_is_short_and_only_for_a_live_process() {
        let at = |state: &str, started_ms| Instance { state: state.into(), started_ms, ..Default::default() };
        let now = 1_000_000_000;
        assert_eq!(uptime_text(&at("running", now - 42_000), now), "42s");
        assert_eq!(uptime_text(&at("paused", now - 312_000), now), "5m12s");
        assert_eq!(uptime_text(&at("running", now - 7_380_000), now), "2h03m");
        assert_eq!(uptime_text(&at("running", now - 273_600_000), now), "3d04h");
        assert_eq!(uptime_text(&at("running", now + 500), now), "0s", "a clock a little ahead");
        assert_eq!(uptime_text(&at("stopped", now - 42_000), now), "-");
        assert_eq!(uptime_text(&at("running", 0), now), "-", "a member that does not say");
    }
}
