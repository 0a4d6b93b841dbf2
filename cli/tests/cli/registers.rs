//! The registers (chapter 4), launched as real instances.
