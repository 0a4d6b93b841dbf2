//! Applications built on the runtime: whole lab exercises rather than one
//! abstraction of the book (the group chat, …). One file per application,
//! its protocol in the `.md` next to it; each is listed in [`MODULES`].

pub mod chat;

use crate::catalog::ModuleInfo;

/// The applications, one entry each.
pub const MODULES: &[ModuleInfo] = &[chat::INFO];
