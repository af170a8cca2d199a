//! The Noise handshake and data messages from someone without the key: no INIT is
//! read, no RESP finishes a handshake, no DATA opens.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use tunbox::tunnel::noise::{self, HandshakeKey, Initiator, Responder, Transport};
use tunbox::tunnel::Key;

fn hk() -> &'static HandshakeKey {
    static K: OnceLock<HandshakeKey> = OnceLock::new();
    K.get_or_init(|| HandshakeKey::new(Key::from_bytes([7; 32])))
}

/// Transport keys of one real handshake (the server's side), made once.
fn transport() -> &'static (Transport, u32) {
    static T: OnceLock<(Transport, u32)> = OnceLock::new();
    T.get_or_init(|| {
        let mut init = [0u8; 256];
        let (_i, n) = Initiator::start(hk(), 1, noise::MODE_TUN, 1, &mut init).unwrap();
        let mut resp = [0u8; 256];
        let (peer, _m, t) =
            noise::respond(hk(), noise::MODE_TUN, &init[..n], 2, &mut resp).unwrap();
        (t, peer)
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, msg)) = data.split_first() else {
        return;
    };
    let _ = noise::message_type(msg);
    match sel % 3 {
        0 => {
            assert!(!hk().mac1_ok(msg) || msg.len() == noise::INIT_LEN);
            assert!(Responder::read(hk(), noise::MODE_TUN, msg).is_err());
        }
        1 => {
            let mut init = [0u8; 256];
            let (mut ini, _) = Initiator::start(hk(), 9, noise::MODE_TUN, 1, &mut init).unwrap();
            let _ = Initiator::resp_receiver(msg);
            assert!(ini.finish(msg).is_err());
            assert!(ini.into_transport().is_err());
        }
        _ => {
            let (t, _) = transport();
            if let Some(h) = noise::data_header(msg) {
                let mut out = vec![0u8; msg.len()];
                assert_eq!(noise::open(t, h.counter, msg, &mut out), None);
            }
        }
    }
});
