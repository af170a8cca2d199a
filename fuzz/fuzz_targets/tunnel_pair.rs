//! The tunnel state machine, two peers (client and server, one key) driven by the
//! input: time steps, timer ticks, packets from the devices, deliveries in any order,
//! losses, duplicates, replays, and bytes flipped or made up on the way.
//!
//! Property: nothing unauthenticated is delivered or answered. A packet a peer hands to
//! its device is one the other peer took from its device; a message altered or made
//! up on the way (not byte-identical to one a peer sent) is never delivered,
//! answered, or taken as a keepalive.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::collections::HashSet;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use tunbox::tunnel::{Key, Output, Role, Tunnel, TunnelConfig};

struct Side {
    t: Tunnel,
    /// Messages on their way to this side.
    inbox: Vec<Vec<u8>>,
    /// Packets this side took from its device (unique by their number).
    sent: HashSet<Vec<u8>>,
}

fn cfg(role: Role) -> TunnelConfig {
    let mut c = TunnelConfig::new(role, false);
    c.keepalive = Some(Duration::from_secs(2));
    c.timeout = Some(Duration::from_secs(6));
    c.rekey_after = Duration::from_secs(20);
    c.reject_after = Duration::from_secs(30);
    c
}

fuzz_target!(|data: &[u8]| {
    let start = Instant::now();
    let key = Key::from_bytes([3; 32]);
    let mut sides = [
        Side {
            t: Tunnel::new(cfg(Role::Client), key.clone(), start),
            inbox: Vec::new(),
            sent: HashSet::new(),
        },
        Side {
            t: Tunnel::new(cfg(Role::Server), key, start),
            inbox: Vec::new(),
            sent: HashSet::new(),
        },
    ];
    // Every message either side ever sent (a verbatim copy may be replayed).
    let mut genuine: HashSet<Vec<u8>> = HashSet::new();
    let mut now = start;
    let mut out = vec![0u8; 4096];
    let mut seq = 0u32;
    let mut ops = data.iter().copied();
    while let Some(op) = ops.next() {
        let me = usize::from(op & 1);
        let arg = ops.next().unwrap_or(0);
        match (op >> 1) % 8 {
            0 => now += Duration::from_millis(u64::from(arg) * 50),
            1 => {
                // timers
                for _ in 0..4 {
                    match sides[me].t.tick(
                        &mut out,
                        now,
                        // A wall clock that follows `now`: deterministic runs.
                        1_700_000_000_000_000_000 + (now - start).as_nanos() as u64,
                    ) {
                        Output::ToNetwork(n) => {
                            genuine.insert(out[..n].to_vec());
                            sides[1 - me].inbox.push(out[..n].to_vec());
                        }
                        Output::Nothing => break,
                        _ => {}
                    }
                }
            }
            2 => {
                // a packet from the device: an IPv4-looking packet with a unique number
                seq += 1;
                let mut p = vec![0x45, 0, 0, 24];
                p.extend_from_slice(&seq.to_le_bytes());
                p.resize(24 + usize::from(arg % 64), arg);
                if let Output::ToNetwork(n) = sides[me].t.encapsulate(&p, &mut out, now) {
                    sides[me].sent.insert(p);
                    genuine.insert(out[..n].to_vec());
                    sides[1 - me].inbox.push(out[..n].to_vec());
                }
            }
            3..=6 => {
                // deliver (3), lose (4), duplicate (5) or alter (6) a message on its way
                let inbox = &mut sides[me].inbox;
                if inbox.is_empty() {
                    continue;
                }
                let i = usize::from(arg) % inbox.len();
                let mut msg = match (op >> 1) % 8 {
                    3 => inbox.remove(i),
                    4 => {
                        inbox.remove(i);
                        continue;
                    }
                    5 => inbox[i].clone(),
                    _ => {
                        let mut m = inbox.remove(i);
                        let at = usize::from(ops.next().unwrap_or(0)) % m.len().max(1);
                        let how = ops.next().unwrap_or(1);
                        if m.is_empty() {
                            m.push(how);
                        } else if how == 0 {
                            m.truncate(at);
                        } else {
                            m[at] ^= how;
                        }
                        m
                    }
                };
                deliver(&mut sides, me, &mut msg, &mut genuine, now, &mut out);
            }
            _ => {
                // made up by an attacker: the next `arg % 96` input bytes
                let n = usize::from(arg % 96);
                let mut msg: Vec<u8> = ops.by_ref().take(n).collect();
                deliver(&mut sides, me, &mut msg, &mut genuine, now, &mut out);
            }
        }
    }
});

fn deliver(
    sides: &mut [Side; 2],
    me: usize,
    msg: &mut Vec<u8>,
    genuine: &mut HashSet<Vec<u8>>,
    now: Instant,
    out: &mut [u8],
) {
    let authentic = genuine.contains(msg.as_slice());
    let src = Some(IpAddr::from([198, 18, 0, 2]));
    let o = sides[me].t.decapsulate_from(msg, out, now, src);
    match o {
        Output::ToDevice(n) => {
            assert!(authentic, "an altered or made-up message was delivered");
            assert!(
                sides[1 - me].sent.contains(&out[..n]),
                "delivered a packet the peer never sent"
            );
        }
        Output::ToNetwork(n) => {
            assert!(authentic, "an altered or made-up message was answered");
            let answer = out[..n].to_vec();
            genuine.insert(answer.clone());
            sides[1 - me].inbox.push(answer);
        }
        Output::Keepalive => assert!(authentic, "an altered or made-up keepalive"),
        Output::Drop(_) | Output::Nothing => {}
    }
}
