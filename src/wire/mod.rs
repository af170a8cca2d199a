//! Zero-copy packet views and in-place transforms. No I/O, no allocation.
pub mod ip;
