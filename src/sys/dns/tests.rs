use super::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn resolv_conf_as_musl_reads_it() {
    let c = parse_resolv_conf("");
    assert_eq!(c.servers, ["127.0.0.1:53".parse().unwrap()]);
    assert_eq!((c.ndots, c.timeout, c.attempts), (1, 5, 2));
    assert!(c.search.is_empty());
    let c = parse_resolv_conf(
        "# OpenWrt\nsearch lan\nnameserver 198.18.0.53\nnameserver bogus\n\
         nameserver 2001:2::53\nnameserver fe80::1%7\nnameserver 198.18.0.54\n\
         domain home.arpa\noptions ndots:2 timeout:1 attempts:99 rotate\n",
    );
    assert_eq!(
        c.servers,
        [
            "198.18.0.53:53".parse().unwrap(),
            "[2001:2::53]:53".parse().unwrap(),
            "[fe80::1%7]:53".parse().unwrap(),
        ]
    );
    assert_eq!(c.search, ["home.arpa"]);
    assert_eq!((c.ndots, c.timeout, c.attempts), (2, 1, 10));
    // systemd-resolved's stub
    let c = parse_resolv_conf("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch .\n");
    assert_eq!(c.servers, ["127.0.0.53:53".parse().unwrap()]);
}

#[test]
fn hosts_file() {
    let h = "127.0.0.1 localhost\n# 198.18.0.9 gw\n198.18.0.1\tGW gw.lan # router\n\
             2001:2::1 gw\n198.18.0.2 other\n";
    assert_eq!(from_hosts(h, "gw"), [ip("198.18.0.1"), ip("2001:2::1")]);
    assert_eq!(from_hosts(h, "Gw.Lan."), [ip("198.18.0.1")]);
    assert!(from_hosts(h, "router").is_empty());
    assert!(from_hosts(h, "g").is_empty());
}

#[test]
fn names() {
    assert!(valid_name("vpn.example.com"));
    assert!(valid_name("vpn.example.com."));
    assert!(valid_name("my_host-1"));
    assert!(!valid_name(""));
    assert!(!valid_name("a..b"));
    assert!(!valid_name("a b"));
    assert!(!valid_name(&"a".repeat(64)));
    assert!(!valid_name(&["a"; 128].join(".")));
}

#[test]
fn query_bytes() {
    assert_eq!(
        query(0x1234, "ab.c.", 28),
        [0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2, b'a', b'b', 1, b'c', 0, 0, 28, 0, 1]
    );
}

/// A reply to `q` with `rcode` and the records (a CNAME first, then the addresses, the
/// first owner name by a compression pointer to the question).
fn reply(q: &[u8], rcode: u8, addrs: &[IpAddr]) -> Vec<u8> {
    let mut r = q.to_vec();
    r[2] = 0x81;
    r[3] = 0x80 | rcode;
    r[7] = addrs.len() as u8 + 1;
    // CNAME at the question's name -> "x"
    r.extend_from_slice(&[0xc0, 12, 0, 5, 0, 1, 0, 0, 0, 60, 0, 3, 1, b'x', 0]);
    for a in addrs {
        r.extend_from_slice(&[1, b'x', 0]);
        let (ty, data) = match a {
            IpAddr::V4(a) => (1u8, a.octets().to_vec()),
            IpAddr::V6(a) => (28, a.octets().to_vec()),
        };
        r.extend_from_slice(&[0, ty, 0, 1, 0, 0, 0, 60, 0, data.len() as u8]);
        r.extend_from_slice(&data);
    }
    r
}

#[test]
fn replies() {
    let q = query(7, "srv.test", 1);
    let r = reply(&q, 0, &[ip("198.18.0.1"), ip("198.18.0.2")]);
    assert_eq!(
        parse_reply(&q, &r),
        Some(Answer::Addrs(vec![ip("198.18.0.1"), ip("198.18.0.2")]))
    );
    // records of the other type are not taken
    let r6 = reply(&q, 0, &[ip("2001:2::1")]);
    assert_eq!(parse_reply(&q, &r6), Some(Answer::Addrs(vec![])));
    // the name echoed in other case is the same question
    let mut up = r.clone();
    up[13] = b'S';
    assert!(parse_reply(&q, &up).is_some());
    assert_eq!(parse_reply(&q, &reply(&q, 3, &[])), Some(Answer::NoName));
    assert_eq!(parse_reply(&q, &reply(&q, 2, &[])), Some(Answer::Retry));
    assert_eq!(parse_reply(&q, &reply(&q, 5, &[])), Some(Answer::Failed(5)));
    // not a reply to this query: other id, other question, no QR bit
    let mut other = r.clone();
    other[1] ^= 1;
    assert_eq!(parse_reply(&q, &other), None);
    assert_eq!(parse_reply(&query(7, "srv.test", 28), &r), None);
    assert_eq!(parse_reply(&query(7, "srv.tesu", 1), &r), None);
    let mut noqr = r.clone();
    noqr[2] = 1;
    assert_eq!(parse_reply(&q, &noqr), None);
    // cut anywhere: never a panic, and no address from a partial record
    for n in 0..r.len() {
        match parse_reply(&q, &r[..n]) {
            None => {}
            Some(Answer::Addrs(v)) => panic!("{n}: {v:?}"),
            Some(a) => panic!("{n}: {a:?}"),
        }
    }
    // a record whose length runs past the end
    let mut long = r.clone();
    let last = long.len() - 5;
    long[last] = 200;
    assert_eq!(parse_reply(&q, &long), None);
}

#[test]
fn destination_order() {
    let key = |d: &str, s: Option<&str>, i| sort_key(ip(d), s.map(ip), i);
    // reachable beats unreachable
    assert!(key("198.18.0.1", Some("198.18.0.2"), 1) > key("2001:2::1", None, 0));
    // global IPv6 (precedence 40) beats IPv4 (35), both reachable
    assert!(key("2001:2::1", Some("2001:2::2"), 1) > key("198.18.0.1", Some("198.18.0.2"), 0));
    // a ULA (precedence 3) loses to IPv4
    assert!(key("fd00::1", Some("fd00::2"), 0) < key("198.18.0.1", Some("198.18.0.2"), 1));
    // an IPv6 destination from an IPv4-only host: label mismatch loses to IPv4
    assert!(
        key("2001:2::1", Some("::ffff:198.18.0.2"), 0) < key("198.18.0.1", Some("198.18.0.2"), 1)
    );
    // otherwise equal: the first given wins
    assert!(key("198.18.0.1", Some("198.18.0.9"), 0) > key("198.18.0.2", Some("198.18.0.9"), 1));
    // only IPv4: the order is kept
    assert_eq!(
        preferred(&[ip("198.18.0.2"), ip("198.18.0.1")]),
        Some(ip("198.18.0.2"))
    );
    assert_eq!(preferred(&[]), None);
}

/// A DNS server on 127.0.0.1 (in a network namespace of the test thread when it can
/// make one, else on the loopback as it is) answering by `answer(name, qtype)`: `None`
/// sends nothing. Counts the queries it gets.
struct Fake {
    addr: SocketAddr,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

type AnswerFn = fn(&str, u16) -> Option<(u8, Vec<IpAddr>)>;

impl Fake {
    fn start(answer: AnswerFn) -> Fake {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = sock.local_addr().unwrap();
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (q, st) = (queries.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            while !st.load(Ordering::Relaxed) {
                let Ok((n, from)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                q.fetch_add(1, Ordering::Relaxed);
                let m = &buf[..n];
                let mut name = Vec::new();
                let mut p = 12;
                while m[p] != 0 {
                    let l = m[p] as usize;
                    name.push(String::from_utf8_lossy(&m[p + 1..p + 1 + l]).into_owned());
                    p += 1 + l;
                }
                let qtype = u16::from_be_bytes([m[p + 1], m[p + 2]]);
                if let Some((rcode, addrs)) = answer(&name.join("."), qtype) {
                    let addrs: Vec<IpAddr> = addrs
                        .into_iter()
                        .filter(|a| a.is_ipv4() == (qtype == 1))
                        .collect();
                    let _ = sock.send_to(&reply(m, rcode, &addrs), from);
                }
            }
        });
        Fake {
            addr,
            queries,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.take().unwrap().join();
    }
}

/// Runs `f` in a thread of its own network namespace (with `lo` up) when the test may
/// make one.
fn in_netns(f: fn()) {
    std::thread::spawn(move || {
        if nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).is_ok() {
            crate::sys::netlink::Rtnl::new()
                .and_then(|nl| nl.set_up("lo", true))
                .expect("lo up");
        }
        f()
    })
    .join()
    .unwrap();
}

fn conf(servers: &[SocketAddr], timeout: u32, attempts: u32) -> Conf {
    Conf {
        servers: servers.to_vec(),
        search: vec!["lan".into()],
        ndots: 1,
        timeout,
        attempts,
    }
}

#[test]
fn asks_a_dns_server() {
    in_netns(|| {
        let srv = Fake::start(|name, _| match name {
            "vpn.example.com" => Some((0, vec![ip("198.18.0.7"), ip("2001:2::7")])),
            "v4only.example.com" => Some((0, vec![ip("198.18.0.8")])),
            "gw.lan" => Some((0, vec![ip("198.18.0.1")])),
            "servfail.example.com" => Some((2, vec![])),
            "refused.example.com" => Some((5, vec![])),
            "silent.example.com" => None,
            _ => Some((3, vec![])),
        });
        let c = conf(&[srv.addr], 2, 2);
        let got = ask(&c, "vpn.example.com").unwrap();
        assert_eq!(got, [ip("2001:2::7"), ip("198.18.0.7")]);
        assert_eq!(ask(&c, "v4only.example.com"), Ok(vec![ip("198.18.0.8")]));
        assert_eq!(ask(&c, "nx.example.com"), Err(Fail::NoName));
        assert_eq!(ask(&c, "refused.example.com"), Err(Fail::Code(5)));
        // a name without dots: the search suffix first, then as given
        assert_eq!(ask_search(&c, "gw"), Ok(vec![ip("198.18.0.1")]));
        assert_eq!(ask_search(&c, "nx"), Err(Fail::NoName));
        assert_eq!(ask_search(&c, "gw.lan."), Ok(vec![ip("198.18.0.1")]));
        // no answer: resent every timeout/attempts, given up after timeout
        let before = srv.queries.load(Ordering::Relaxed);
        let t0 = Instant::now();
        assert_eq!(ask(&c, "silent.example.com"), Err(Fail::Timeout));
        let took = t0.elapsed();
        assert!(
            took >= Duration::from_millis(1900) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert_eq!(srv.queries.load(Ordering::Relaxed) - before, 4);
        // SERVFAIL is asked again, and ends as a timeout
        assert_eq!(
            ask(&conf(&[srv.addr], 1, 1), "servfail.example.com"),
            Err(Fail::Timeout)
        );
    });
}

#[test]
fn first_answer_from_several_servers() {
    in_netns(|| {
        let dead = Fake::start(|_, _| None);
        let failing = Fake::start(|_, _| Some((2, vec![])));
        let good = Fake::start(|_, _| Some((0, vec![ip("198.18.0.9")])));
        let c = conf(&[dead.addr, failing.addr, good.addr], 5, 2);
        let t0 = Instant::now();
        assert_eq!(ask(&c, "srv.test"), Ok(vec![ip("198.18.0.9")]));
        assert!(t0.elapsed() < Duration::from_secs(1));
        // the fake counts in a thread of its own, which may not have read both queries
        // yet when the answer is back (seen on a loaded machine): give it a moment
        let t1 = Instant::now();
        while dead.queries.load(Ordering::Relaxed) < 2 && t1.elapsed() < Duration::from_secs(1) {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(dead.queries.load(Ordering::Relaxed) >= 2);
    });
}
