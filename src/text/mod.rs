//! text stage (being written).
