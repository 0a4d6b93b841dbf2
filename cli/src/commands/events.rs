//! `mgrctl events RUN`: mirrors the `Events` RPC: the structured events of
//! a run's instances, merged from every member that hosts some.

use std::io::Write;

use mgr_modules::check::Event;
use mgr_proto::EventsRequest;

use crate::client::Client;

#[derive(Debug, clap::Args)]
pub struct EventsArgs {
    /// The run.
    pub run: String,
    /// Keep printing new events until the run's instances have ended.
    #[arg(short, long)]
    pub follow: bool,
    /// The events as they are written: one JSON object per line.
    #[arg(long)]
    pub json: bool,
}

pub async fn events(mut client: Client, args: EventsArgs) -> anyhow::Result<u8> {
    let request = EventsRequest { run: args.run.clone(), follow: args.follow, local: false };
    let mut stream = match client.events(request).await {
        Ok(stream) => stream.into_inner(),
        Err(status) => return Err(crate::suggest::target(&mut client, &args.run, status).await),
    };
    let mut out = std::io::BufWriter::new(crate::stdout::lock());
    let mut missing = Vec::new();
    let gone = crate::stdout::gone();
    tokio::pin!(gone);
    loop {
        let chunk = tokio::select! {
            chunk = stream.message() => chunk.map_err(super::status)?,
            _ = &mut gone => return Err(crate::stdout::Closed.into()),
        };
        let Some(chunk) = chunk else { break };
        for member in chunk.missing {
            crate::note!("mgrctl: the events of member {member} are missing: it is dead or out of reach");
            missing.push(member);
        }
        let text = String::from_utf8_lossy(&chunk.lines);
        for line in text.lines() {
            if args.json {
                writeln!(out, "{line}")?;
                continue;
            }
            match serde_json::from_str::<Event>(line) {
                Ok(e) => writeln!(out, "{}", human(&e, &chunk.member))?,
                Err(_) => writeln!(out, "{}@{} ? {line}", chunk.instance, chunk.member)?,
            }
        }
        out.flush()?;
    }
    out.flush()?;
    Ok(if missing.is_empty() { 0 } else { 1 })
}

/// `p1@lab-01 L12 send → p2 #3 hello`.
fn human(e: &Event, member: &str) -> String {
    let mut line = format!("{}@{member} L{} {}", e.process, e.lamport, e.event);
    if let Some(peer) = &e.peer {
        let arrow = if e.event == "send" { "→" } else { "←" };
        line.push_str(&format!(" {arrow} {peer}"));
    }
    if let Some(id) = e.id {
        line.push_str(&format!(" #{id}"));
    }
    if let Some(text) = &e.text {
        line.push(' ');
        line.push_str(text);
    }
    line
}
