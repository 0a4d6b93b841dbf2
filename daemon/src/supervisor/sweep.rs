//! The sweep at start-up: kills what a previous run of this manager left.
//!
//! Every instance (and everything it starts, since the environment is
//! inherited) carries `MGR_MEMBER_ID=<this manager's id>`. After a `kill -9`
//! of the manager, its direct children die of `PR_SET_PDEATHSIG`, but their
//! own children may live on; the next start finds them by that variable in
//! `/proc/PID/environ`, which also catches processes that left the instance's
//! process group.

use std::fs;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Kills every process whose environment holds `MGR_MEMBER_ID=<member_id>`.
/// Returns how many were killed.
pub fn sweep(member_id: &str) -> usize {
    let marker = format!("MGR_MEMBER_ID={member_id}");
    let me = std::process::id();
    let Ok(entries) = fs::read_dir("/proc") else {
        return 0;
    };
    let mut killed = 0;
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(environ) = fs::read(entry.path().join("environ")) else {
            continue;
        };
        if environ.split(|b| *b == 0).any(|var| var == marker.as_bytes())
            && kill(Pid::from_raw(pid as i32), Signal::SIGKILL).is_ok()
        {
            tracing::warn!(pid, "killed a process left by an earlier run of this manager");
            killed += 1;
        }
    }
    killed
}
