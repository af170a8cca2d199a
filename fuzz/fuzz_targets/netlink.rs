//! rtnetlink replies (links, addresses, routes, acks, dump ends) on any bytes: no
//! panic, and never more messages handed on than headers fit.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tunbox::sys::netlink::fuzz_api::{parse_addr, parse_link, parse_routes, process};

fuzz_target!(|data: &[u8]| {
    let _ = parse_link(data);
    let _ = parse_addr(data);
    let _ = parse_routes(data);
    let mut handed = 0;
    let _ = process(
        data,
        7,
        data.first().is_some_and(|b| b & 1 == 1),
        &mut |t, p| {
            handed += 1;
            match t {
                16 => parse_link(p).map(drop),
                20 => parse_addr(p).map(drop),
                _ => parse_routes(p).map(drop),
            }
        },
    );
    assert!(handed <= data.len() / 16);
});
