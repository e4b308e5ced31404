//! Records of older Rust producers.
