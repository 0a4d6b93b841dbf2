//! The failure detectors and leader election (chapter 2), launched as real instances.
