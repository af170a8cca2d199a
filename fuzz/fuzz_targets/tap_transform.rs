//! The TAP reflector's frame transform (ARP, NDP, IP reflection, echo replies) on any
//! frame: a reply fits the buffer and is an Ethernet frame from the reflector's MAC.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tunbox::wire::cidr::Cidr;
use tunbox::wire::ethernet::MacAddr;
use tunbox::wire::tap::{self, Action, TapConfig};

const MAC: MacAddr = MacAddr([0x02, 0, 0x5e, 0, 0, 1]);

fuzz_target!(|data: &[u8]| {
    let Some((&flags, frame)) = data.split_first() else {
        return;
    };
    let cfg = TapConfig {
        mac: MAC,
        ranges: ["198.18.0.0/24", "2001:2::/64"]
            .iter()
            .map(|c| c.parse::<Cidr>().unwrap())
            .collect(),
        icmp_echo: flags & 1 == 1,
    };
    let mut buf = [0u8; 2048];
    let n = frame.len().min(buf.len());
    buf[..n].copy_from_slice(&frame[..n]);
    // The length passed may exceed the buffer (treated as the buffer's length).
    let len = if flags & 2 == 2 { n + 7 } else { n };
    match tap::transform(&mut buf, len, &cfg) {
        Action::Send { len, .. } => {
            assert!((14..=buf.len()).contains(&len), "{len}");
            assert_eq!(&buf[6..12], &MAC.0, "answers come from the reflector's MAC");
            let _ = tap::frame_addrs(&buf[..len]);
        }
        Action::Drop(r) => {
            let _ = r.name();
        }
    }
});
