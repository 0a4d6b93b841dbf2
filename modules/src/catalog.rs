//! The built-in modules: names and descriptions. Static data only, so that
//! the daemon and the CLI can list and explain modules without running them.
//!
//! The book text of each module lives in one file next to its code
//! (`links/*.md`); the catalog and the module's rustdoc both include it.

use crate::runtime::{Contract, RunError};

/// How a built-in module is started: the contract and the arguments after its name.
pub type EntryPoint = fn(Contract, &[String]) -> Result<(), RunError>;

/// What the daemon knows of one built-in module, and how to run it.
#[derive(Debug, Clone, Copy)]
pub struct ModuleInfo {
    /// The name that starts it: `mgr-modules <name>`, e.g. "FairLossPointToPointLink".
    pub name: &'static str,
    /// One line, for lists.
    pub summary: &'static str,
    /// Where the book defines the abstraction, e.g. "Module 2.1".
    pub reference: &'static str,
    /// Several lines: the interface (events) and properties in the book's
    /// wording, the module arguments, the stdin commands and the stdout lines.
    pub description: &'static str,
    /// The book's names of the algorithms implemented, e.g. "Retransmit Forever";
    /// empty when the abstraction is provided directly (UDP is fair-loss).
    pub algorithms: &'static [&'static str],
    /// Runs the module in this process.
    pub run: EntryPoint,
}

/// Every built-in module, in the book's order: each chapter's folder lists
/// its own modules in its `MODULES`.
pub fn all() -> impl Iterator<Item = &'static ModuleInfo> {
    crate::links::MODULES
        .iter()
        .chain(crate::detectors::MODULES)
        .chain(crate::broadcast::MODULES)
        .chain(crate::registers::MODULES)
        .chain(crate::consensus::MODULES)
        .chain(crate::apps::MODULES)
}

/// The module called `name`, if it is built in.
pub fn find(name: &str) -> Option<&'static ModuleInfo> {
    all().find(|m| m.name == name)
}
