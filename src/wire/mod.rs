pub mod arp;
pub mod cidr;
pub mod ethernet;
pub mod icmp;
pub mod ndp;
pub mod tap;
