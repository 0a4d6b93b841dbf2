//! Chapter 3 broadcasts: best-effort, reliable, uniform reliable, FIFO, causal and
//! probabilistic broadcast.
//!
//! One file per abstraction, its interface and properties in the doc
//! comment; each is listed in [`MODULES`].

use crate::catalog::ModuleInfo;

/// The modules of this chapter, in the book's order.
pub const MODULES: &[ModuleInfo] = &[];
