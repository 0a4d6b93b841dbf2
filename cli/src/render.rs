//! Rendering instance output: `p1 | text` lines (coloured per instance on a
//! terminal) or one JSON object per line, a chunk at a time (the live
//! stream of `launch`) or a line at a time (`logs`, which merges the
//! instances' lines in time order). This is the hot path of output
//! streaming: records are copied straight from the received chunk into one
//! buffered writer, with no per-line allocation in the text form.

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::{Duration, UNIX_EPOCH};

use memchr::memchr_iter;
use mgr_proto::{OutputChunk, record};

/// ANSI colours given to instances in turn.
const COLOURS: [&str; 6] = ["\x1b[36m", "\x1b[33m", "\x1b[32m", "\x1b[35m", "\x1b[34m", "\x1b[31m"];
const RESET: &str = "\x1b[0m";

/// How lines are shown.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub json: bool,
    pub colour: bool,
    /// Show `p1@member` rather than `p1`.
    pub members: bool,
}

impl Style {
    /// Colour only on a terminal, and never with NO_COLOR set.
    pub fn detect(json: bool, members: bool) -> Style {
        use std::io::IsTerminal;
        let colour =
            !json && std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
        Style { json, colour, members }
    }
}

/// Writes chunks, or single lines, to stdout.
pub struct Renderer<W: Write> {
    out: W,
    style: Style,
    slots: HashMap<String, usize>,
    prefixes: Vec<Prefixes>,
    width: usize,
}

/// What goes before each line of one instance, and its names for JSON.
struct Prefixes {
    line: Vec<u8>,
    note: Vec<u8>,
    run: String,
    instance: String,
    member: String,
}

impl<W: Write> Renderer<W> {
    /// `width` is the widest instance label expected, to align prefixes.
    pub fn new(out: W, style: Style, width: usize) -> Self {
        Renderer { out, style, slots: HashMap::new(), prefixes: Vec::new(), width }
    }

    /// The slot of the instance that sent `chunk`, for [`Renderer::line`].
    /// Instances get their colours in the order they are first seen.
    pub fn slot(&mut self, chunk: &OutputChunk) -> usize {
        let key = format!("{}/{}", chunk.run, chunk.instance);
        if let Some(slot) = self.slots.get(&key) {
            return *slot;
        }
        let n = self.prefixes.len();
        let width = self.width;
        let label =
            if self.style.members { format!("{}@{}", chunk.instance, chunk.member) } else { chunk.instance.clone() };
        let label = format!("{label:<width$}");
        let (on, off) = if self.style.colour { (COLOURS[n % COLOURS.len()], RESET) } else { ("", "") };
        self.prefixes.push(Prefixes {
            line: format!("{on}{label} |{off} ").into_bytes(),
            note: format!("{on}{label} #{off} ").into_bytes(),
            run: chunk.run.clone(),
            instance: chunk.instance.clone(),
            member: chunk.member.clone(),
        });
        self.slots.insert(key, n);
        n
    }

    /// Writes every numbered record of `chunk`; returns the sequence number
    /// of the last one (or `first_seq - 1` when there is none).
    pub fn chunk(&mut self, chunk: &OutputChunk) -> io::Result<u64> {
        if self.style.json {
            return self.json(chunk);
        }
        let records = &chunk.records;
        let slot = self.slot(chunk);
        let mut seq = chunk.first_seq;
        let mut start = 0;
        for end in memchr_iter(b'\n', records) {
            let rec = &records[start..end];
            start = end + 1;
            let Some(&tag) = rec.first() else { continue };
            if tag == record::TIME {
                continue;
            }
            let p = &self.prefixes[slot];
            self.out.write_all(if tag == record::MANAGER { &p.note } else { &p.line })?;
            self.out.write_all(rec.get(2..).unwrap_or_default())?;
            self.out.write_all(b"\n")?;
            seq += 1;
        }
        Ok(seq - 1)
    }

    fn json(&mut self, chunk: &OutputChunk) -> io::Result<u64> {
        let records = &chunk.records;
        let mut seq = chunk.first_seq;
        let mut time_ms = chunk.time_ms;
        let mut start = 0;
        for end in memchr_iter(b'\n', records) {
            let rec = &records[start..end];
            start = end + 1;
            let Some(&tag) = rec.first() else { continue };
            let text = rec.get(2..).unwrap_or_default();
            if tag == record::TIME {
                time_ms = std::str::from_utf8(text).ok().and_then(|t| t.parse().ok()).unwrap_or(time_ms);
                continue;
            }
            let value = json_line(&chunk.run, &chunk.instance, &chunk.member, &Line { tag, text, seq, time_ms });
            serde_json::to_writer(&mut self.out, &value)?;
            self.out.write_all(b"\n")?;
            seq += 1;
        }
        Ok(seq - 1)
    }

    /// Writes one line of the instance in `slot`, after `stamp` when given
    /// (its time as the user asked to see it; JSON carries its own).
    pub fn line(&mut self, slot: usize, line: &Line<'_>, stamp: Option<&str>) -> io::Result<()> {
        let p = &self.prefixes[slot];
        if self.style.json {
            serde_json::to_writer(&mut self.out, &json_line(&p.run, &p.instance, &p.member, line))?;
            return self.out.write_all(b"\n");
        }
        if let Some(stamp) = stamp {
            self.out.write_all(stamp.as_bytes())?;
            self.out.write_all(b" ")?;
        }
        self.out.write_all(if line.tag == record::MANAGER { &p.note } else { &p.line })?;
        self.out.write_all(line.text)?;
        self.out.write_all(b"\n")
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// One numbered record of an instance's log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Line<'a> {
    /// `o` stdout, `e` stderr, `m` a note by the manager.
    pub tag: u8,
    pub text: &'a [u8],
    pub seq: u64,
    /// When the manager stored it (Unix ms).
    pub time_ms: u64,
}

/// A line as JSON: run, instance, member, stream, seq, time, text.
fn json_line(run: &str, instance: &str, member: &str, line: &Line<'_>) -> serde_json::Value {
    let stream = match line.tag {
        record::STDOUT => "stdout",
        record::STDERR => "stderr",
        _ => "mgr",
    };
    let time = humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(line.time_ms)).to_string();
    serde_json::json!({
        "run": run,
        "instance": instance,
        "member": member,
        "stream": stream,
        "seq": line.seq,
        "time": time,
        "text": String::from_utf8_lossy(line.text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(records: &[u8]) -> OutputChunk {
        OutputChunk {
            run: "r1".into(),
            instance: "p1".into(),
            member: "lab-01".into(),
            first_seq: 7,
            time_ms: 1_000,
            records: records.to_vec().into(),
        }
    }

    #[test]
    fn text_lines_get_the_instance_prefix() {
        let mut out = Vec::new();
        let style = Style { json: false, colour: false, members: true };
        let mut r = Renderer::new(&mut out, style, 0);
        let last = r.chunk(&chunk(b"t 5\no hello\ne oops\nm exited with code 0\n")).unwrap();
        assert_eq!(last, 9);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "p1@lab-01 | hello\np1@lab-01 | oops\np1@lab-01 # exited with code 0\n"
        );
    }

    #[test]
    fn each_instance_gets_its_own_colour_and_aligned_prefix() {
        let mut out = Vec::new();
        let style = Style { json: false, colour: true, members: false };
        let mut r = Renderer::new(&mut out, style, 3);
        let mut other = chunk(b"o b\n");
        other.instance = "p10".into();
        r.chunk(&chunk(b"o a\n")).unwrap();
        r.chunk(&other).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("{}p1  |{RESET} a", COLOURS[0]));
        assert_eq!(lines[1], format!("{}p10 |{RESET} b", COLOURS[1]));
    }

    #[test]
    fn json_lines_carry_seq_stream_and_time() {
        let mut out = Vec::new();
        let style = Style { json: true, colour: false, members: false };
        let mut r = Renderer::new(&mut out, style, 0);
        r.chunk(&chunk(b"o a\nt 2000\ne \xffb\n")).unwrap();
        let lines: Vec<serde_json::Value> =
            String::from_utf8(out).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines[0]["seq"], 7);
        assert_eq!(lines[0]["stream"], "stdout");
        assert_eq!(lines[0]["time"], "1970-01-01T00:00:01.000Z");
        assert_eq!(lines[1]["seq"], 8);
        assert_eq!(lines[1]["stream"], "stderr");
        assert_eq!(lines[1]["time"], "1970-01-01T00:00:02.000Z");
        assert_eq!(lines[1]["text"], "\u{fffd}b");
    }
}
