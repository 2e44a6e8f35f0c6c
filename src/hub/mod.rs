//! hub stage (being written).
