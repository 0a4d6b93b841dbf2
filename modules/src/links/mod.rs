//! Point-to-point links (Chapter 2.4 of the book), each built on the one before:
//! fair-loss → stubborn → perfect.
//!
//! Every link is a struct whose methods are the book's handlers. A request
//! (`⟨ sl, Send | q, m ⟩`) is a method call on the link; an indication
//! (`⟨ sl, Deliver | p, m ⟩`) is what the receiving method returns to the
//! layer above. When a link runs as a module of its own, the layer above is
//! the user: its [`Module`](crate::runtime::Module) impl turns `send q text`
//! into a request and prints each indication as `deliver p text`.

pub mod fair_loss;
pub mod perfect;
pub mod stubborn;

use crate::catalog::ModuleInfo;

/// The links of chapter 2.
pub const MODULES: &[ModuleInfo] = &[
    ModuleInfo {
        name: "FairLossPointToPointLink",
        summary: "fair-loss point-to-point link over UDP",
        reference: "Module 2.1",
        description: include_str!("fair_loss.md"),
        algorithms: &[],
        run: fair_loss::run,
    },
    ModuleInfo {
        name: "StubbornPointToPointLink",
        summary: "stubborn point-to-point link: retransmits every message forever",
        reference: "Module 2.2",
        description: include_str!("stubborn.md"),
        algorithms: &["Retransmit Forever"],
        run: stubborn::run,
    },
    ModuleInfo {
        name: "PerfectPointToPointLink",
        summary: "perfect point-to-point link: reliable delivery, no duplicates",
        reference: "Module 2.3",
        description: include_str!("perfect.md"),
        algorithms: &["Eliminate Duplicates"],
        run: perfect::run,
    },
];
