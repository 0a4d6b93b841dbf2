//! `mgrctl diagram RUN -o FILE`: draws a run's space-time diagram from its
//! merged events (the `Events` RPC) and its instances' members (the `Ps`
//! RPC). The drawing is [`crate::diagram`]'s; this file only fetches and
//! writes, choosing SVG or HTML by the file's extension (and refusing any
//! other, before fetching anything: a `.png` that holds SVG helps nobody).

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
    /// Write to FILE: SVG when it ends in .svg, a self-contained HTML page
    /// when it ends in .html or .htm (no other format is written). Without
    /// it, the SVG goes to stdout.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

pub async fn diagram(mut client: Client, args: DiagramArgs) -> anyhow::Result<u8> {
    if let Some(path) = &args.output {
        format_of(path)?;
    }
    draw(&mut client, &args.run, args.output.as_deref()).await
}

/// The formats a diagram is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Format {
    Svg,
    Html,
}

/// The format `path`'s extension names; an error for any other.
pub(super) fn format_of(path: &std::path::Path) -> anyhow::Result<Format> {
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    match extension.as_deref() {
        Some("svg") => Ok(Format::Svg),
        Some("html" | "htm") => Ok(Format::Html),
        Some(other) => anyhow::bail!(
            "cannot write a diagram as .{other} ({}): name the file FILE.svg or FILE.html",
            path.display()
        ),
        None => anyhow::bail!(
            "cannot tell the diagram's format from {}: name the file FILE.svg or FILE.html",
            path.display()
        ),
    }
}

/// Draws `run` into `output` (by its extension), or to stdout; 1 when a
/// member's events are missing.
pub(super) async fn draw(client: &mut Client, run_name: &str, output: Option<&std::path::Path>) -> anyhow::Result<u8> {
    let format = output.map(format_of).transpose()?.unwrap_or(Format::Svg);
    let run = crate::events::collect(client, run_name).await?;
    for member in &run.missing {
        crate::note!("mgrctl: the events of member {member} are missing: it is dead or out of reach");
    }
    let bare = crate::trace::without_vc(&run);
    if !bare.is_empty() {
        crate::note!(
            "mgrctl: the events of {} carry no vector clock (vc): they are placed by their Lamport clocks alone (see modules/README.md, Events file)",
            bare.join(",")
        );
    }
    let reply =
        client.ps(PsRequest { run: run_name.to_owned(), local: false }).await.map_err(super::status)?.into_inner();
    let members = reply.runs.iter().flat_map(|r| &r.instances).map(|i| (i.name.clone(), i.member.clone())).collect();
    let options = Options { members };
    let text = match format {
        Format::Html => diagram::html(&run, &options),
        Format::Svg => diagram::svg(&run, &options),
    };
    match output {
        Some(path) => std::fs::write(path, text).with_context(|| format!("cannot write {}", path.display()))?,
        None => {
            let mut out = crate::stdout::lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    Ok(if run.missing.is_empty() { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{Format, format_of};

    #[test]
    fn the_extension_names_the_format_and_no_other_is_written() {
        assert_eq!(format_of(Path::new("r1.svg")).unwrap(), Format::Svg);
        assert_eq!(format_of(Path::new("out/r1.HTML")).unwrap(), Format::Html);
        assert_eq!(format_of(Path::new("r1.htm")).unwrap(), Format::Html);
        let png = format_of(Path::new("r1.png")).unwrap_err().to_string();
        assert_eq!(png, "cannot write a diagram as .png (r1.png): name the file FILE.svg or FILE.html");
        assert!(format_of(Path::new("r1")).is_err());
    }
}
