//! tokenize stage (being written).
