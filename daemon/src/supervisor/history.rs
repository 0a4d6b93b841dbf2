//! History: the record of each run on this member, kept in its folder as
//! `run.json`, so that a restarted manager knows last week's runs.
//!
//! A record is written (to a new file renamed over the old one, so a reader
//! never sees half of one) when a run starts and whenever one of its
//! instances starts or ends; it holds the run's plan and each local
//! instance's last state. At start the manager reads every run folder: a run
//! whose instances were all ended is loaded as it was; an instance recorded
//! as running was lost with the manager that ran it. A folder without a
//! record (a run of an older manager) is loaded from its logs, its
//! instances lost.
//!
//! This module owns the file format and its reading and writing; it must
//! not know about processes, logs or gRPC.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The file of a run's record, in its folder.
pub const RECORD: &str = "run.json";

/// The largest record read: 256 instances of a plan are a few tens of KiB.
const MAX_RECORD: u64 = 4 << 20;

/// The version of the format written; others are read as no record.
const VERSION: u32 = 1;

/// One run as this member keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub version: u32,
    pub name: String,
    pub module: String,
    #[serde(default)]
    pub args: Vec<String>,
    pub created_ms: u64,
    /// Every instance of the run, on every member.
    #[serde(default)]
    pub plan: Vec<PlanEntry>,
    /// This member's instances.
    pub instances: Vec<InstanceRecord>,
}

/// One instance of a run's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanEntry {
    pub name: String,
    pub member_id: String,
    pub member: String,
    pub address: SocketAddr,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub module: String,
}

/// One local instance and how it was last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub name: String,
    #[serde(default)]
    pub role: String,
    #[serde(default)]
    pub module: String,
    pub address: SocketAddr,
    /// As `ps` says it: "running", "exited", "stopped"…
    pub state: String,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub starts: u32,
    /// Sequence number of the last record of its log when this was written.
    pub last_seq: u64,
    /// When it last started and, if it has, ended (Unix ms).
    #[serde(default)]
    pub started_ms: u64,
    #[serde(default)]
    pub ended_ms: Option<u64>,
    /// Taken out of the run by a scale.
    #[serde(default)]
    pub removed: bool,
}

impl RunRecord {
    pub fn new(name: String, module: String, args: Vec<String>, created_ms: u64) -> Self {
        RunRecord { version: VERSION, name, module, args, created_ms, plan: Vec::new(), instances: Vec::new() }
    }
}

/// Writes `record` to `dir/run.json`, atomically.
pub fn save(dir: &Path, record: &RunRecord) -> io::Result<()> {
    let text = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
    let tmp = dir.join(".run.json.new");
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(&text)?;
    drop(file);
    std::fs::rename(&tmp, dir.join(RECORD))
}

/// What was found in a run folder.
#[derive(Debug)]
pub enum Found {
    /// A record, read.
    Record(RunRecord),
    /// No record (a run of an older manager): the instances whose logs are
    /// there, and when the folder was made.
    Logs { instances: Vec<String>, created_ms: u64 },
}

/// Reads every run folder of `runs_dir`; a folder that cannot be read is
/// skipped with a warning (once, at start).
pub fn load(runs_dir: &Path) -> Vec<(String, PathBuf, Found)> {
    let Ok(entries) = std::fs::read_dir(runs_dir) else { return Vec::new() };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let dir = entry.path();
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        if crate::names::check(crate::names::Kind::Run, &name).is_err() || !dir.is_dir() {
            continue;
        }
        match read(&dir, &name) {
            Ok(f) => found.push((name, dir, f)),
            Err(err) => tracing::warn!(run = %name, %err, "a run folder that cannot be read: left out"),
        }
    }
    found
}

fn read(dir: &Path, name: &str) -> io::Result<Found> {
    let path = dir.join(RECORD);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.is_file() && meta.len() <= MAX_RECORD => {
            let mut text = Vec::new();
            std::fs::File::open(&path)?.take(MAX_RECORD).read_to_end(&mut text)?;
            let record: RunRecord = serde_json::from_slice(&text).map_err(io::Error::other)?;
            if record.version != VERSION || record.name != name {
                return Err(io::Error::other(format!("{RECORD} is not a record of version {VERSION} of this run")));
            }
            for instance in &record.instances {
                crate::names::check(crate::names::Kind::Instance, &instance.name).map_err(io::Error::other)?;
            }
            Ok(Found::Record(record))
        }
        Ok(_) => Err(io::Error::other(format!("{RECORD} is not a regular file of at most {MAX_RECORD} bytes"))),
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let mut instances: Vec<String> = std::fs::read_dir(dir)?
                .flatten()
                .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log").map(str::to_owned))
                .filter(|n| crate::names::check(crate::names::Kind::Instance, n).is_ok())
                .collect();
            instances.sort_by_key(|n| crate::names::instance_number(n));
            let created_ms = std::fs::metadata(dir)?
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_millis() as u64);
            Ok(Found::Logs { instances, created_ms })
        }
        Err(err) => Err(err),
    }
}

/// Bytes a run folder takes on disk (its files, not below).
pub fn disk_usage(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| m.blocks() * 512)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> RunRecord {
        let mut r = RunRecord::new("demo".into(), "FairLossPointToPointLink".into(), vec!["-v".into()], 1000);
        let address: SocketAddr = "127.0.0.1:24000".parse().unwrap();
        r.plan.push(PlanEntry {
            name: "p1".into(),
            member_id: "abc".into(),
            member: "m".into(),
            address,
            role: String::new(),
            module: "FairLossPointToPointLink".into(),
        });
        r.instances.push(InstanceRecord {
            name: "p1".into(),
            role: String::new(),
            module: "FairLossPointToPointLink".into(),
            address,
            state: "stopped".into(),
            exit_code: None,
            signal: Some(15),
            starts: 1,
            last_seq: 4,
            started_ms: 1000,
            ended_ms: Some(2000),
            removed: false,
        });
        r
    }

    #[test]
    fn a_record_survives_a_round_trip_and_old_folders_are_read_from_their_logs() {
        let runs = tempfile::tempdir().unwrap();
        let demo = runs.path().join("demo");
        std::fs::create_dir(&demo).unwrap();
        save(&demo, &record()).unwrap();
        let old = runs.path().join("old");
        std::fs::create_dir(&old).unwrap();
        for f in ["p2.log", "p10.log", "p1.log", "p1.events.jsonl", "notes.txt"] {
            std::fs::write(old.join(f), "").unwrap();
        }
        let bad = runs.path().join("bad");
        std::fs::create_dir(&bad).unwrap();
        std::fs::write(bad.join(RECORD), "{ not json").unwrap();
        std::fs::create_dir(runs.path().join(".hidden")).unwrap();
        let mut found = load(runs.path());
        found.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(found.len(), 2, "{found:?}");
        match &found[0] {
            (name, _, Found::Record(r)) if name == "demo" => {
                assert_eq!(r, &record());
            }
            other => panic!("{other:?}"),
        }
        match &found[1] {
            (name, _, Found::Logs { instances, .. }) if name == "old" => assert_eq!(instances, &["p1", "p2", "p10"]),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_record_of_another_run_or_a_hostile_one_is_refused() {
        let runs = tempfile::tempdir().unwrap();
        let dir = runs.path().join("other");
        std::fs::create_dir(&dir).unwrap();
        save(&dir, &record()).unwrap();
        assert!(load(runs.path()).is_empty(), "a record naming another run");
        let mut hostile = record();
        hostile.name = "other".into();
        hostile.instances[0].name = "../../x".into();
        save(&dir, &hostile).unwrap();
        assert!(load(runs.path()).is_empty(), "an instance name that is a path");
    }
}
