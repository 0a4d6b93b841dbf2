//! The structured event log (`MGR_EVENTS`) and the process's Lamport clock.
//!
//! Every line of the file is one JSON object:
//!
//! ```json
//! {"time_ms":1700000000000,"run":"lab1","process":"p1","event":"send","peer":"p2","id":1,"lamport":1,"text":"hello"}
//! ```
//!
//! The clock lives here because the log is where its values are used: tools
//! that draw space-time diagrams order events by `lamport` and pair a `send`
//! with its `deliver` by (`process`, `peer`, `id`).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;

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
    text: Option<&'a str>,
}

/// Appends events to the `MGR_EVENTS` file (or to nothing when there is no
/// file) and keeps the Lamport clock.
#[derive(Debug)]
pub struct EventLog {
    file: Option<File>,
    run: String,
    process: String,
    lamport: u64,
    warned: bool,
}

impl EventLog {
    /// Opens `path` for appending (creating it), or makes a log that writes
    /// nothing when `path` is `None`.
    pub fn open(path: Option<&Path>, run: &str, process: &str) -> io::Result<EventLog> {
        let file = match path {
            Some(path) => Some(OpenOptions::new().append(true).create(true).open(path)?),
            None => None,
        };
        Ok(EventLog { file, run: run.to_owned(), process: process.to_owned(), lamport: 0, warned: false })
    }

    /// The current value of the Lamport clock.
    pub fn lamport(&self) -> u64 {
        self.lamport
    }

    /// Records a send to `peer` and returns the message's Lamport timestamp
    /// (the clock ticks before a send).
    pub fn send(&mut self, peer: &str, id: Option<u64>, text: &str) -> u64 {
        self.lamport += 1;
        self.write("send", Some(peer), id, Some(text));
        self.lamport
    }

    /// Records a delivery from `peer`. `stamp` is the sender's timestamp when
    /// the message carried one: the clock becomes `max(clock, stamp) + 1`.
    /// Without a stamp (fair-loss payloads are bare text) the delivery is
    /// counted as a local event, `clock + 1`. Returns the new clock value.
    pub fn deliver(&mut self, peer: &str, id: Option<u64>, stamp: Option<u64>, text: &str) -> u64 {
        self.lamport = self.lamport.max(stamp.unwrap_or(0)) + 1;
        self.write("deliver", Some(peer), id, Some(text));
        self.lamport
    }

    /// Records any other event (a local event for the clock). Modules use it
    /// for events beyond send and deliver, e.g. a crash detection.
    pub fn record(&mut self, event: &str, peer: Option<&str>, id: Option<u64>, text: Option<&str>) {
        self.lamport += 1;
        self.write(event, peer, id, text);
    }

    fn write(&mut self, event: &str, peer: Option<&str>, id: Option<u64>, text: Option<&str>) {
        let Some(file) = &mut self.file else { return };
        let time_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let record =
            Record { time_ms, run: &self.run, process: &self.process, event, peer, id, lamport: self.lamport, text };
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
    fn lamport_ticks_on_send_and_takes_max_on_deliver() {
        let mut log = EventLog::open(None, "r", "p1").unwrap();
        assert_eq!(log.send("p2", Some(1), "a"), 1);
        assert_eq!(log.deliver("p2", Some(1), Some(7), "b"), 8);
        assert_eq!(log.deliver("p2", Some(2), Some(3), "c"), 9);
        assert_eq!(log.deliver("p2", None, None, "d"), 10);
        log.record("crash", Some("p3"), None, None);
        assert_eq!(log.lamport(), 11);
    }

    #[test]
    fn appends_one_json_object_per_line() {
        let path = temp_path("events");
        let _ = std::fs::remove_file(&path);
        let mut log = EventLog::open(Some(&path), "lab", "p1").unwrap();
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
        assert_eq!(lines[0]["peer"], "p2");
        assert_eq!(lines[0]["id"], 1);
        assert_eq!(lines[0]["lamport"], 1);
        assert_eq!(lines[0]["text"], "hello");
        assert!(lines[0]["time_ms"].as_u64().unwrap() > 0);
        assert_eq!(lines[1]["event"], "deliver");
        assert_eq!(lines[1]["id"], Value::Null);
        assert_eq!(lines[1]["lamport"], 2);
    }
}
