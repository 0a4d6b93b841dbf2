//! `mgrctl trace RUN`: writes a run's merged events (the `Events` RPC, as
//! `mgrctl events` fetches them) as a trace file: a ShiViz log or JSON
//! lines. The formatting is [`crate::trace`]'s; this file only fetches and
//! writes.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::client::Client;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TraceFormat {
    /// A ShiViz log (https://bestchai.bitbucket.io/shiviz/): open it there
    /// with "upload a log" as it is.
    Shiviz,
    /// The raw events, one JSON object per line, merged by Lamport clock.
    Json,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  mgrctl trace r1 --format shiviz -o r1.log   (then load r1.log in ShiViz)\n  mgrctl trace r1 --format json | jq .\nThe ShiViz log starts with ShiViz's default parsing expression and an empty delimiter line; each event is two lines, its description then `host {\"p1\":3,\"p2\":1}`, the vector clock."
)]
pub struct TraceArgs {
    /// The run.
    pub run: String,
    /// The file format.
    #[arg(long, value_enum, default_value_t = TraceFormat::Shiviz)]
    pub format: TraceFormat,
    /// Write to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub async fn trace(mut client: Client, args: TraceArgs) -> anyhow::Result<u8> {
    let run = crate::events::collect(&mut client, &args.run).await?;
    for member in &run.missing {
        crate::note!("mgrctl: the events of member {member} are missing: it is dead or out of reach");
    }
    let bare = crate::trace::without_vc(&run);
    if !bare.is_empty() && args.format == TraceFormat::Shiviz {
        crate::note!(
            "mgrctl: the events of {} carry no vector clock (vc): ShiViz shows no causal links for them (see modules/README.md, Events file)",
            bare.join(",")
        );
    }
    let text = match args.format {
        TraceFormat::Shiviz => crate::trace::shiviz(&run),
        TraceFormat::Json => crate::trace::json_lines(&run),
    };
    match &args.output {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut out = crate::stdout::lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(if run.missing.is_empty() { 0 } else { 1 })
}
