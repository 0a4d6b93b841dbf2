//! `mgrctl diagram RUN -o FILE`: draws a run's space-time diagram from its
//! merged events (the `Events` RPC) and its instances' members (the `Ps`
//! RPC). The drawing is [`crate::diagram`]'s; this file only fetches and
//! writes, choosing SVG or HTML by the file's extension.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use mgr_proto::PsRequest;

use crate::client::Client;
use crate::diagram::{self, Options};

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  mgrctl diagram r1 -o r1.svg\n  mgrctl diagram r1 -o r1.html   (the same SVG in a page; hover a mark for its event, clocks and text)\nOne line per process (p1@member), time left to right by happens-before; an arrow per message from its send to its receive; a lost message ends in ×, duplicated ones are marked \"dup\"; a crash is a cross where the line stops; a suspicion is a triangle naming the suspect; deliveries and decisions are labelled dots."
)]
pub struct DiagramArgs {
    /// The run.
    pub run: String,
    /// Write to FILE: SVG, or a self-contained HTML page when FILE ends in
    /// .html or .htm. Without it, the SVG goes to stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub async fn diagram(mut client: Client, args: DiagramArgs) -> anyhow::Result<u8> {
    draw(&mut client, &args.run, args.output.as_deref()).await
}

/// Draws `run` into `output` (by its extension), or to stdout; 1 when a
/// member's events are missing.
pub(super) async fn draw(client: &mut Client, run_name: &str, output: Option<&std::path::Path>) -> anyhow::Result<u8> {
    let run = crate::events::collect(client, run_name).await?;
    for member in &run.missing {
        eprintln!("mgrctl: the events of member {member} are missing: it is dead or out of reach");
    }
    let reply =
        client.ps(PsRequest { run: run_name.to_owned(), local: false }).await.map_err(super::status)?.into_inner();
    let members = reply.runs.iter().flat_map(|r| &r.instances).map(|i| (i.name.clone(), i.member.clone())).collect();
    let options = Options { members };
    let html = output
        .and_then(|p| p.extension())
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"));
    let text = if html { diagram::html(&run, &options) } else { diagram::svg(&run, &options) };
    match output {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(if run.missing.is_empty() { 0 } else { 1 })
}
