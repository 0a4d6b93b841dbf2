//! The built-in modules: names and descriptions. Static data only, so that
//! the daemon and the CLI can list and explain modules without running them.
//!
//! The book text of each module lives in one file next to its code
//! (`links/*.md`); the catalog and the module's rustdoc both include it.

/// What the daemon knows of one built-in module.
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
}

/// Every built-in module, in the book's order.
pub const ALL: &[ModuleInfo] = &[
    ModuleInfo {
        name: "FairLossPointToPointLink",
        summary: "fair-loss point-to-point link over UDP",
        reference: "Module 2.1",
        description: include_str!("links/fair_loss.md"),
        algorithms: &[],
    },
    ModuleInfo {
        name: "StubbornPointToPointLink",
        summary: "stubborn point-to-point link: retransmits every message forever",
        reference: "Module 2.2",
        description: include_str!("links/stubborn.md"),
        algorithms: &["Retransmit Forever"],
    },
    ModuleInfo {
        name: "PerfectPointToPointLink",
        summary: "perfect point-to-point link: reliable delivery, no duplicates",
        reference: "Module 2.3",
        description: include_str!("links/perfect.md"),
        algorithms: &["Eliminate Duplicates"],
    },
];

/// The module called `name`, if it is built in.
pub fn find(name: &str) -> Option<&'static ModuleInfo> {
    ALL.iter().find(|m| m.name == name)
}
