//! The module side of mgr: what runs inside each process the daemon launches.
//!
//! This crate owns
//! - the [`runtime`]: the launch contract (environment variables), the event
//!   loop that turns stdin commands, UDP datagrams and timers into calls of a
//!   module's `upon_*` handlers, and the `MGR_EVENTS` log with its Lamport clock;
//! - the built-in modules ([`links`]), one file each, written to be read next
//!   to the book's pseudo-code;
//! - the [`catalog`] of built-in modules, static data the daemon may use.
//!
//! It knows nothing of the daemon, gRPC or the CLI: a module's whole world is
//! the launch contract described in `modules/README.md`, which modules written
//! in other languages implement just the same.

pub mod catalog;
pub mod links;
pub mod runtime;

use runtime::{Contract, RunError};

/// How a built-in module is started: the contract and the arguments after its name.
pub type EntryPoint = fn(Contract, &[String]) -> Result<(), RunError>;

/// The entry point of the built-in module called `name` (a [`catalog`] name).
pub fn entry_point(name: &str) -> Option<EntryPoint> {
    let entry: EntryPoint = match name {
        "FairLossPointToPointLink" => links::fair_loss::run,
        "StubbornPointToPointLink" => links::stubborn::run,
        "PerfectPointToPointLink" => links::perfect::run,
        _ => return None,
    };
    Some(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_entry_can_be_started() {
        for info in catalog::ALL {
            assert!(entry_point(info.name).is_some(), "{}", info.name);
            assert!(catalog::find(info.name).is_some());
            assert!(info.description.contains(info.reference), "{}", info.name);
        }
        assert!(entry_point("NoSuchModule").is_none());
        assert!(catalog::find("NoSuchModule").is_none());
    }
}
