//! Chapter 4 shared memory: (1,N) regular and atomic registers.
//!
//! One file per abstraction, its interface and properties in the doc
//! comment; each is listed in [`MODULES`].

use crate::catalog::ModuleInfo;

/// The modules of this chapter, in the book's order.
pub const MODULES: &[ModuleInfo] = &[];
