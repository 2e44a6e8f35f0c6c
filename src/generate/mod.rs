//! generate stage (being written).
