//! The wire protocol of mgr: the messages and the `Manager` gRPC service that
//! `mgrctl` (and, in a group, other managers) use to talk to a daemon.
//!
//! This crate owns only generated code and the constants that go with it. It
//! must not grow behaviour: conversions to and from the daemon's own types live
//! at the daemon's edge (`daemon/src/control`), and rendering lives in the CLI.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("mgr.v1");

/// Record tags used in [`OutputChunk::records`] (and, byte for byte, in the
/// per-instance log files). Every record is `TAG b' ' TEXT b'\n'`.
pub mod record {
    /// A line the instance wrote to stdout.
    pub const STDOUT: u8 = b'o';
    /// A line the instance wrote to stderr.
    pub const STDERR: u8 = b'e';
    /// A line written by the manager about the instance (started, exited…).
    pub const MANAGER: u8 = b'm';
    /// Not a line: sets the time, in Unix milliseconds, of the records after it.
    /// Time records carry no sequence number.
    pub const TIME: u8 = b't';
}
