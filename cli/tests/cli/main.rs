//! Integration tests: real `mgr` daemons (loopback only, temporary state
//! dirs, discovery off) driven by the real `mgrctl` binary, with real module
//! processes exchanging real UDP datagrams. One test binary for the crate;
//! one file per area.

mod auth;
mod broadcast;
mod consensus;
mod detectors;
mod foundation;
mod group;
mod harness;
mod multihost;
mod netns;
mod registers;
mod visualize;
