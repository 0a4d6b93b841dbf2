//! The consensus and total-order broadcast (chapters 5 and 6), launched as real instances.
