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

pub mod apps;
pub mod broadcast;
pub mod catalog;
pub mod check;
pub mod consensus;
pub mod detectors;
pub mod links;
pub mod registers;
pub mod runtime;

pub use catalog::EntryPoint;

/// The entry point of the built-in module called `name` (a [`catalog`] name).
pub fn entry_point(name: &str) -> Option<EntryPoint> {
    catalog::find(name).map(|m| m.run)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_entry_can_be_started_and_names_are_unique() {
        let mut names = std::collections::HashSet::new();
        for info in catalog::all() {
            assert!(names.insert(info.name), "{} is listed twice", info.name);
            assert!(entry_point(info.name).is_some(), "{}", info.name);
            assert!(info.description.contains(info.reference), "{}", info.name);
        }
        assert!(entry_point("NoSuchModule").is_none());
        assert!(catalog::find("NoSuchModule").is_none());
    }
}
