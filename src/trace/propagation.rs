//! placeholder, replaced by the parsers branch
