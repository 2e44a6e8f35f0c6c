//! io stage (being written).
