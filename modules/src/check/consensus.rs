//! The properties of the book's consensus chapter, checked on a run's events.
//!
//! SKELETON: filled in by the chapter's checker.

use super::Property;

/// The properties `module` declares, if it is one of this chapter's.
pub fn properties(_module: &str) -> Option<Vec<Property>> {
    None
}
