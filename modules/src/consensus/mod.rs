//! Chapters 5 and 6: consensus, uniform consensus and total-order broadcast.
//!
//! One file per abstraction, its interface and properties in the doc
//! comment; each is listed in [`MODULES`].

use crate::catalog::ModuleInfo;

/// The modules of this chapter, in the book's order.
pub const MODULES: &[ModuleInfo] = &[];
