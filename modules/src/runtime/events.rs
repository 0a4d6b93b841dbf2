//! The structured event log (`MGR_EVENTS`) and the process's logical clocks.
//!
//! Every line of the file is one JSON object:
//!
//! ```json
//! {"time_ms":1700000000000,"run":"lab1","process":"p1","event":"send","peer":"p2","id":1,"lamport":1,"vc":[1,0],"inc":1,"text":"hello"}
//! ```
//!
//! The clocks live here because the log is where their values are used:
//! tools that check runs or draw space-time diagrams order events by
//! `lamport`, relate them by the vector clock `vc` (one entry per process of
//! the run, in `MGR_PEERS` order), and pair a `send` with its `receive` or
//! `deliver` by (`process`, `peer`, `id`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// The clocks a message carries: the sender's Lamport clock and vector clock
/// at the send.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Stamp {
    pub lamport: u64,
    pub vc: Vec<u64>,
}

impl Stamp {
    /// One token for a frame: `LAMPORT/V1.V2.V3`.
    pub fn encode(&self) -> String {
        let vc: Vec<String> = self.vc.iter().map(u64::to_string).collect();
        format!("{}/{}", self.lamport, vc.join("."))
    }

    /// Reads a token made by [`Stamp::encode`].
    pub fn decode(token: &str) -> Option<Stamp> {
        let (lamport, vc) = token.split_once('/')?;
        let lamport = lamport.parse().ok()?;
        let vc =
            if vc.is_empty() { Vec::new() } else { vc.split('.').map(|v| v.parse().ok()).collect::<Option<_>>()? };
        Some(Stamp { lamport, vc })
    }
}

/// One line of the events file.
#[derive(Debug, Serialize)]
struct Record<'a> {
    time_ms: u64,
    run: &'a str,
    process: &'a str,
    event: &'a str,
    peer: Option<&'a str>,
    id: Option<u64>,
    lamport: u64,
    vc: &'a [u64],
    inc: u64,
    text: Option<&'a str>,
}

/// Appends events to the `MGR_EVENTS` file (or to nothing when there is no
/// file) and keeps the Lamport and vector clocks.
#[derive(Debug)]
pub struct EventLog {
    file: Option<File>,
    run: String,
    process: String,
    lamport: u64,
    vc: Vec<u64>,
    /// This process's entry in `vc`.
    me: usize,
    /// Its incarnation (`MGR_INCARNATION`), written on every event.
    inc: u64,
    warned: bool,
}

impl EventLog {
    /// Opens `path` for appending (creating it), or makes a log that writes
    /// nothing when `path` is `None`. `me` is this process's index among the
    /// `n` processes of the run.
    pub fn open(path: Option<&Path>, run: &str, process: &str, me: usize, n: usize) -> io::Result<EventLog> {
        let file = match path {
            Some(path) => Some(OpenOptions::new().append(true).create(true).open(path)?),
            None => None,
        };
        Ok(EventLog {
            file,
            run: run.to_owned(),
            process: process.to_owned(),
            lamport: 0,
            vc: vec![0; n.max(me + 1)],
            me,
            inc: 1,
            warned: false,
        })
    }

    /// The same log for incarnation `inc` of its process (1 unless set).
    pub fn incarnation(mut self, inc: u64) -> EventLog {
        self.inc = inc;
        self
    }

    /// The current value of the Lamport clock.
    pub fn lamport(&self) -> u64 {
        self.lamport
    }

    /// The current vector clock.
    pub fn vc(&self) -> &[u64] {
        &self.vc
    }

    fn tick(&mut self) {
        self.lamport += 1;
        self.vc[self.me] += 1;
    }

    /// Records a send to `peer` and returns the stamp the message carries
    /// (the clocks tick before a send).
    pub fn send(&mut self, peer: &str, id: Option<u64>, text: &str) -> Stamp {
        self.tick();
        self.write("send", Some(peer), id, Some(text));
        Stamp { lamport: self.lamport, vc: self.vc.clone() }
    }

    /// Records the arrival of a message from `peer` as `event` (`receive`
    /// at a link below the user, `deliver` where the user sees it). With the
    /// sender's `stamp` the clocks take the maximum, then tick; without one
    /// (fair-loss payloads are bare text) the arrival is a local event.
    pub fn arrive(&mut self, event: &str, peer: &str, id: Option<u64>, stamp: Option<&Stamp>, text: &str) -> u64 {
        if let Some(stamp) = stamp {
            self.lamport = self.lamport.max(stamp.lamport);
            for (mine, theirs) in self.vc.iter_mut().zip(&stamp.vc) {
                *mine = (*mine).max(*theirs);
            }
        }
        self.tick();
        self.write(event, Some(peer), id, Some(text));
        self.lamport
    }

    /// Records a delivery from `peer` (see [`EventLog::arrive`]).
    pub fn deliver(&mut self, peer: &str, id: Option<u64>, stamp: Option<&Stamp>, text: &str) -> u64 {
        self.arrive("deliver", peer, id, stamp, text)
    }

    /// Records any other event, a local event for the clocks: a broadcast, a
    /// suspicion, a decision…
    pub fn record(&mut self, event: &str, peer: Option<&str>, id: Option<u64>, text: Option<&str>) {
        self.tick();
        self.write(event, peer, id, text);
    }

    fn write(&mut self, event: &str, peer: Option<&str>, id: Option<u64>, text: Option<&str>) {
        let Some(file) = &mut self.file else { return };
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let record = Record {
            time_ms,
            run: &self.run,
            process: &self.process,
            event,
            peer,
            id,
            lamport: self.lamport,
            vc: &self.vc,
            inc: self.inc,
            text,
        };
        let mut line = serde_json::to_vec(&record).expect("a record always serializes");
        line.push(b'\n');
        // One write per line: with O_APPEND the kernel appends it whole, so the
        // lines of several processes sharing one file do not interleave.
        if let Err(err) = file.write_all(&line) {
            // The module keeps working without its log; one warning is enough
            // to explain the gap without flooding stderr.
            if !self.warned {
                eprintln!("events: cannot append to the events file: {err}");
                self.warned = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn temp_path(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("mgr-modules-{}-{name}.jsonl", std::process::id()))
    }

    #[test]
    fn clocks_tick_on_send_and_take_the_maximum_on_arrival() {
        let mut log = EventLog::open(None, "r", "p1", 0, 3).unwrap();
        let sent = log.send("p2", Some(1), "a");
        assert_eq!(sent, Stamp { lamport: 1, vc: vec![1, 0, 0] });
        let theirs = Stamp { lamport: 7, vc: vec![0, 4, 2] };
        assert_eq!(log.deliver("p2", Some(1), Some(&theirs), "b"), 8);
        assert_eq!(log.vc(), [2, 4, 2]);
        assert_eq!(log.deliver("p2", None, None, "d"), 9);
        log.record("crash", Some("p3"), None, None);
        assert_eq!(log.lamport(), 10);
        assert_eq!(log.vc(), [4, 4, 2]);
    }

    #[test]
    fn stamps_read_back_as_written() {
        let stamp = Stamp { lamport: 12, vc: vec![3, 0, 9] };
        assert_eq!(stamp.encode(), "12/3.0.9");
        assert_eq!(Stamp::decode("12/3.0.9"), Some(stamp));
        assert_eq!(Stamp::decode("5/"), Some(Stamp { lamport: 5, vc: vec![] }));
        assert_eq!(Stamp::decode("x/1"), None);
        assert_eq!(Stamp::decode("3"), None);
    }

    #[test]
    fn appends_one_json_object_per_line() {
        let path = temp_path("events");
        let _ = std::fs::remove_file(&path);
        let mut log = EventLog::open(Some(&path), "lab", "p1", 0, 2).unwrap();
        log.send("p2", Some(1), "hello");
        log.deliver("p2", None, None, "hi");
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let lines: Vec<Value> = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["run"], "lab");
        assert_eq!(lines[0]["process"], "p1");
        assert_eq!(lines[0]["event"], "send");
        assert_eq!(lines[0]["vc"], serde_json::json!([1, 0]));
        assert_eq!(lines[1]["event"], "deliver");
        assert_eq!(lines[1]["id"], Value::Null);
        assert_eq!(lines[1]["lamport"], 2);
    }
}
