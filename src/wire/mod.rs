//! Zero-copy packet views and in-place transforms. No I/O, no allocation.
pub mod arp;
pub mod cidr;
pub mod ethernet;
pub mod gso;
pub mod icmp;
pub mod ip;
pub mod ndp;
pub mod tap;
pub mod virtio;
