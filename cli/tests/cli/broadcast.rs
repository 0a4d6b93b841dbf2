//! The broadcasts (chapter 3), launched as real instances.
