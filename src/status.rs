//! `tunbox status`: every running tunnel and reflector serves its state as JSON on a
//! unix socket, `/var/run/tunbox/NAME.status` (NAME: the device), made before privileges
//! are dropped, mode 0600 and owned by the service user (root can always connect). A
//! client connects, reads one JSON document to the end, and the server closes. Serving
//! happens only when someone connects: nothing is done for it per packet.
//!
//! The JSON (version 1; fields are only ever added). A tunnel:
//!
//! ```text
//! {"version":1,"tool":"tunnel","device":"tbx0","pid":123,"mode":"tun","transport":"udp",
//!  "role":"server","listen":"[::]:5555","remote":null,"socket_drops":0,
//!  "drops":{"short":0,...},                       // not attributed to a peer
//!  "peers":[{"name":"spoke0","endpoint":"198.19.10.2:40000","last_handshake_secs":12,
//!            "rx_packets":10,"rx_bytes":1200,"tx_packets":9,"tx_bytes":1100,
//!            "keepalives_rx":1,"keepalives_tx":2,"handshakes_sent":0,
//!            "handshakes_answered":1,"sessions":1,"peer_dead":0,
//!            "drops":{"short":0,"bad_header":0,...}}]}
//! ```
//!
//! `name` is "" for the one peer of the command line; `endpoint`, `last_handshake_secs`
//! and `socket_drops` are null when unknown (no session yet; TCP has no socket drops).
//! `drops` lists every reason of `DropReason::ALL` by its log name.
//!
//! A reflector (`crate::reflect`):
//!
//! ```text
//! {"version":1,"tool":"reflect","device":"tun0","pid":124,"mode":"tun","queues":2,
//!  "offloads":["csum","tso4","tso6"],"addresses":["198.18.0.1/15"],
//!  "ranges":[],"excluded":[],"mac":null,"icmp_echo":false,"uptime_secs":42,
//!  "rx_packets":10,"rx_bytes":840,"tx_packets":9,"tx_bytes":756,"tx_errors":0,
//!  "super_packets":0,"drops":{"truncated":0,...,"would_loop":0},
//!  "replies":null,"ignored":null}
//! ```
//!
//! rx: packets (frames) read from the device, tx: written back; bytes without the
//! virtio header. `queues`: threads reading the device; `offloads`: those the kernel
//! took (empty: plain packets); `addresses`: `--address`es configured on the device;
//! `uptime_secs`: since it started reflecting; `icmp_echo`: `--icmp-echo` (TAP).
//! TAP only (TUN: `[]`/null): `ranges` answered for, `excluded` (the host's own
//! addresses inside them, never answered for), `mac` (the one that answers),
//! `replies` by kind (`arp_reply`, `neighbor_advert`, `reflected`, `echo_reply`) and
//! `ignored`: the frames not answered by precise reason (`wire::tap::DropReason`), which
//! `drops` counts by the loop's reason (ordinary LAN traffic as `not_for_us`). `drops`
//! lists every reason of `wire::ip::DropReason::ALL`. The counters are the sum of every
//! thread's, read from them when the client connects (exact at that moment).
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::sys::{caps, SysError};
use crate::tunnel::counters::{Counters, DropReason};

/// Suffix of the status sockets in the run directory.
pub const SUFFIX: &str = ".status";

/// The socket of device `name` in `dir`.
pub fn socket_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}{SUFFIX}"))
}

/// A listening status socket; removed when dropped (if the process still may).
pub struct StatusSocket {
    listener: UnixListener,
    path: PathBuf,
}

impl StatusSocket {
    /// Binds `dir/NAME.status` (a stale one from a process that is gone is replaced;
    /// a live one is an error), non-blocking, mode 0600, owned by `owner` if given. The
    /// socket is made under a temporary name and renamed into place once its mode and
    /// owner are set, so no client ever finds it with the umask's mode or root's owner.
    pub fn bind(dir: &Path, name: &str, owner: Option<(u32, u32)>) -> io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let path = socket_path(dir, name);
        if path.exists() {
            if UnixStream::connect(&path).is_ok() {
                return Err(crate::io_error(
                    io::ErrorKind::AddrInUse,
                    format!("{} is served by a running tunbox", path.display()),
                ));
            }
            std::fs::remove_file(&path)?;
        }
        let tmp = dir.join(format!(".{name}{SUFFIX}.new"));
        let _ = std::fs::remove_file(&tmp);
        let listener = UnixListener::bind(&tmp)?;
        let placed = (|| {
            listener.set_nonblocking(true)?;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(&tmp, Some(uid), Some(gid))?;
            }
            std::fs::rename(&tmp, &path)
        })();
        if let Err(e) = placed {
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
        Ok(Self { listener, path })
    }

    /// The socket of a service on device `name` in the run directory, owned by `user`;
    /// `Ok(None)`, with a warning, if it cannot be made: no reason not to run. Call
    /// before dropping privileges.
    pub fn for_service(
        name: &str,
        user: Option<&str>,
        what: &str,
    ) -> Result<Option<Self>, SysError> {
        let dir = crate::tunnel_run::hwm::run_dir();
        let owner = match user {
            Some(u) => Some(caps::lookup_user(u)?),
            None => None,
        };
        match Self::bind(&dir, name, owner.map(|u| (u.uid.as_raw(), u.gid.as_raw()))) {
            Ok(s) => Ok(Some(s)),
            Err(e) => {
                log::warn!(
                    "{name}: no status socket in {} ({e}): `tunbox status` will not show this {what}",
                    dir.display()
                );
                Ok(None)
            }
        }
    }

    pub fn listener(&self) -> &UnixListener {
        &self.listener
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Answers the clients waiting (a few at most per call) with `doc()`, made once
    /// when the first is accepted.
    pub fn serve(&self, doc: impl FnOnce() -> String) {
        let mut doc = Some(doc);
        let mut text = String::new();
        for _ in 0..4 {
            let Ok((mut s, _)) = self.listener.accept() else {
                return;
            };
            if let Some(f) = doc.take() {
                text = f();
            }
            let _ = s.set_nonblocking(false);
            let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
            let _ = s.write_all(text.as_bytes());
        }
    }
}

impl Drop for StatusSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Reads the document a status socket serves.
pub fn query(path: &Path) -> io::Result<String> {
    let mut s = UnixStream::connect(path)?;
    s.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// The status sockets in `dir` (sorted by name).
pub fn sockets(dir: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    if let Ok(d) = std::fs::read_dir(dir) {
        for e in d.flatten() {
            let p = e.path();
            if p.to_str().is_some_and(|s| s.ends_with(SUFFIX)) {
                v.push(p);
            }
        }
    }
    v.sort();
    v
}

/// A JSON string (quotes and escapes).
pub fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON string or null.
pub fn json_opt_str(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.push_str("null"),
    }
}

/// A number or null.
pub fn json_opt_u64(out: &mut String, n: Option<u64>) {
    match n {
        Some(n) => {
            let _ = write!(out, "{n}");
        }
        None => out.push_str("null"),
    }
}

/// `{"name":N,...}` (the names need no escaping).
pub fn json_counts(out: &mut String, counts: &[(&str, u64)]) {
    out.push('{');
    for (i, (k, n)) in counts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "\"{k}\":{n}");
    }
    out.push('}');
}

/// `{"short":0,...}` over every drop reason.
pub fn json_drops(out: &mut String, c: &Counters) {
    json_counts(out, &DropReason::ALL.map(|r| (r.name(), c.dropped(r))));
}

/// The counter fields of a peer (without braces).
pub fn json_counters(out: &mut String, c: &Counters) {
    let _ = write!(
        out,
        "\"rx_packets\":{},\"rx_bytes\":{},\"tx_packets\":{},\"tx_bytes\":{},\
         \"keepalives_rx\":{},\"keepalives_tx\":{},\"handshakes_sent\":{},\
         \"handshakes_answered\":{},\"sessions\":{},\"peer_dead\":{},\"drops\":",
        c.rx_packets,
        c.rx_bytes,
        c.tx_packets,
        c.tx_bytes,
        c.keepalives_rx,
        c.keepalives_tx,
        c.handshakes_sent,
        c.handshakes_answered,
        c.sessions,
        c.peer_dead
    );
    json_drops(out, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_and_human_form() {
        let mut c = Counters {
            rx_packets: 3,
            ..Default::default()
        };
        c.drop(DropReason::InnerSource);
        let mut d =
            String::from("{\"tool\":\"tunnel\",\"device\":\"t\\\"0\",\"peers\":[{\"name\":\"a\",");
        json_counters(&mut d, &c);
        d.push_str(",\"last_handshake_secs\":null}],\"listen\":\"[::]:5555\"}");
        let j = Json::parse(&d).expect("parses");
        assert_eq!(j.get("device").str(), Some("t\"0"));
        let Json::Arr(p) = j.get("peers") else {
            panic!()
        };
        assert_eq!(p[0].get("rx_packets").num(), Some(3));
        assert_eq!(p[0].get("drops").get("inner_source").num(), Some(1));
        let h = human(&d);
        assert!(h.contains("listening on [::]:5555"), "{h}");
        assert!(h.contains("peer a:") && h.contains("rx: 3 packets"), "{h}");
        assert!(h.contains("dropped: inner_source=1"), "{h}");
        assert!(h.contains("latest handshake: none"), "{h}");
        assert_eq!(Json::parse("{\"a\":[1,2],}"), None);
    }

    #[test]
    fn the_parser_takes_any_text_without_panicking() {
        let doc = "{\"a\":[1,{\"b\":\"c\\u0041\"},null,true,false],\"d\":\"\u{e9}\"}";
        assert!(Json::parse(doc).is_some());
        for cut in 0..doc.len() {
            if doc.is_char_boundary(cut) {
                let _ = Json::parse(&doc[..cut]);
                let _ = human(&doc[..cut]);
            }
        }
        assert_eq!(Json::parse("\"\\u00\""), None);
    }

    #[test]
    fn strings_are_escaped() {
        let mut s = String::new();
        json_str(&mut s, "a\"b\\c\n");
        assert_eq!(s, r#""a\"b\\c\u000a""#);
    }

    #[test]
    fn a_reflector_in_human_form() {
        let d = "{\"version\":1,\"tool\":\"reflect\",\"device\":\"tap0\",\"pid\":7,\
                 \"mode\":\"tap\",\"queues\":1,\"offloads\":[],\"addresses\":[],\
                 \"ranges\":[\"198.19.0.0/16\",\"2001:2:0:1::/64\"],\"excluded\":[\"198.19.0.1\"],\
                 \"mac\":\"02:00:5e:00:00:42\",\"icmp_echo\":false,\"uptime_secs\":5,\
                 \"rx_packets\":9,\"rx_bytes\":900,\"tx_packets\":4,\"tx_bytes\":400,\
                 \"tx_errors\":0,\"super_packets\":0,\"drops\":{\"truncated\":0,\"not_for_us\":5},\
                 \"replies\":{\"arp_reply\":1,\"reflected\":3},\
                 \"ignored\":{\"not_our_mac\":2,\"not_in_range\":3}}";
        assert_eq!(
            human(d),
            "reflect tap0: tap, queues 1, pid 7, up 5 s\n\
             \x20 answering for: 198.19.0.0/16 2001:2:0:1::/64 as 02:00:5e:00:00:42\n\
             \x20 not for (own): 198.19.0.1\n\
             \x20 rx: 9 packets, 900 bytes\n\
             \x20 tx: 4 packets, 400 bytes\n\
             \x20 super-packets: 0, tx errors 0\n\
             \x20 dropped: not_for_us=5\n\
             \x20 replies: arp_reply=1 reflected=3\n\
             \x20 ignored: not_our_mac=2 not_in_range=3\n"
        );
        let mut c = String::new();
        json_counts(&mut c, &[("a", 1), ("b", 0)]);
        assert_eq!(c, "{\"a\":1,\"b\":0}");
    }

    #[test]
    fn a_socket_serves_its_document_and_a_stale_one_is_replaced() {
        let dir = std::env::temp_dir().join(format!("tbx-status-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let s = StatusSocket::bind(&dir, "t0", None).unwrap();
        assert!(
            StatusSocket::bind(&dir, "t0", None).is_err(),
            "live one kept"
        );
        let path = s.path().to_path_buf();
        let h = std::thread::spawn(move || query(&path).unwrap());
        let t0 = std::time::Instant::now();
        while !h.is_finished() && t0.elapsed() < Duration::from_secs(5) {
            s.serve(|| "{\"version\":1}".to_string());
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(h.join().unwrap(), "{\"version\":1}");
        assert_eq!(sockets(&dir), vec![socket_path(&dir, "t0")]);
        // A socket file left behind (its process gone) is replaced.
        drop(s);
        drop(UnixListener::bind(socket_path(&dir, "t0")).unwrap());
        assert_eq!(sockets(&dir).len(), 1);
        let s = StatusSocket::bind(&dir, "t0", None).unwrap();
        drop(s);
        assert!(sockets(&dir).is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// A parsed JSON value (enough for the documents above).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Num(u64),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    pub fn parse(s: &str) -> Option<Json> {
        let mut p = Parser {
            b: s.as_bytes(),
            i: 0,
        };
        let v = p.value()?;
        p.ws();
        (p.i == p.b.len()).then_some(v)
    }

    pub fn get(&self, k: &str) -> &Json {
        match self {
            Json::Obj(m) => m
                .iter()
                .find(|(n, _)| n == k)
                .map_or(&Json::Null, |(_, v)| v),
            _ => &Json::Null,
        }
    }

    pub fn str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn num(&self) -> Option<u64> {
        match self {
            Json::Num(n) => Some(*n),
            _ => None,
        }
    }
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn ws(&mut self) {
        while self.b.get(self.i).is_some_and(|c| c.is_ascii_whitespace()) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.ws();
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    fn lit(&mut self, w: &str, v: Json) -> Option<Json> {
        self.b[self.i..].starts_with(w.as_bytes()).then(|| {
            self.i += w.len();
            v
        })
    }

    fn string(&mut self) -> Option<String> {
        self.eat(b'"')?;
        let mut out = String::new();
        loop {
            let c = *self.b.get(self.i)?;
            self.i += 1;
            match c {
                b'"' => return Some(out),
                b'\\' => {
                    let e = *self.b.get(self.i)?;
                    self.i += 1;
                    match e {
                        b'u' => {
                            let h = std::str::from_utf8(self.b.get(self.i..self.i + 4)?).ok()?;
                            self.i += 4;
                            out.push(char::from_u32(u32::from_str_radix(h, 16).ok()?)?);
                        }
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        other => out.push(other as char),
                    }
                }
                _ => {
                    // Copy the UTF-8 sequence starting here.
                    let start = self.i - 1;
                    while self.b.get(self.i).is_some_and(|c| c & 0xc0 == 0x80) {
                        self.i += 1;
                    }
                    out.push_str(std::str::from_utf8(&self.b[start..self.i]).ok()?);
                }
            }
        }
    }

    fn value(&mut self) -> Option<Json> {
        self.ws();
        match *self.b.get(self.i)? {
            b'{' => {
                self.i += 1;
                let mut m = Vec::new();
                if self.eat(b'}').is_some() {
                    return Some(Json::Obj(m));
                }
                loop {
                    let k = self.string()?;
                    self.eat(b':')?;
                    m.push((k, self.value()?));
                    if self.eat(b',').is_none() {
                        self.eat(b'}')?;
                        return Some(Json::Obj(m));
                    }
                }
            }
            b'[' => {
                self.i += 1;
                let mut v = Vec::new();
                if self.eat(b']').is_some() {
                    return Some(Json::Arr(v));
                }
                loop {
                    v.push(self.value()?);
                    if self.eat(b',').is_none() {
                        self.eat(b']')?;
                        return Some(Json::Arr(v));
                    }
                }
            }
            b'"' => self.string().map(Json::Str),
            b'n' => self.lit("null", Json::Null),
            b't' => self.lit("true", Json::Bool(true)),
            b'f' => self.lit("false", Json::Bool(false)),
            b'0'..=b'9' => {
                let s = self.i;
                while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    self.i += 1;
                }
                std::str::from_utf8(&self.b[s..self.i])
                    .ok()?
                    .parse()
                    .ok()
                    .map(Json::Num)
            }
            _ => None,
        }
    }
}

/// A number, or "-" when the value is not one.
struct Num<'a>(&'a Json);

impl std::fmt::Display for Num<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.num() {
            Some(n) => write!(f, "{n}"),
            None => f.write_str("-"),
        }
    }
}

/// `head` and then the items of `v` separated by spaces: `k=N` for the non-zero
/// counters of an object, the strings of an array. Nothing (and `false`) when the
/// items make no text.
fn items(o: &mut String, head: &str, v: &Json) -> bool {
    let start = o.len();
    o.push_str(head);
    let mut sep = "";
    match v {
        Json::Obj(m) => {
            for (k, c) in m {
                if let Some(n) = c.num().filter(|&n| n > 0) {
                    let _ = write!(o, "{sep}{k}={n}");
                    sep = " ";
                }
            }
        }
        Json::Arr(a) => {
            for w in a {
                if let Some(w) = w.str() {
                    o.push_str(sep);
                    o.push_str(w);
                    sep = " ";
                }
            }
        }
        _ => {}
    }
    if o.len() == start + head.len() {
        o.truncate(start);
        return false;
    }
    true
}

/// [`items`] as a line of its own.
fn items_line(o: &mut String, head: &str, v: &Json) {
    if items(o, head, v) {
        o.push('\n');
    }
}

/// The human form of one document (as `wg show`).
pub fn human(doc: &str) -> String {
    let Some(j) = Json::parse(doc.trim()) else {
        return format!("(unreadable status: {})\n", doc.trim());
    };
    let s = |k: &str| j.get(k).str().unwrap_or("-");
    let mut o = String::new();
    if s("tool") == "reflect" {
        human_reflect(&j, &mut o);
        return o;
    }
    let _ = write!(
        o,
        "{} {}: {}, {}, {} ",
        s("tool"),
        s("device"),
        s("mode"),
        s("transport"),
        s("role"),
    );
    match (j.get("listen").str(), j.get("remote").str()) {
        (Some(l), _) => {
            o.push_str("listening on ");
            o.push_str(l);
        }
        (_, Some(r)) => {
            o.push_str("to ");
            o.push_str(r);
        }
        _ => {}
    }
    let _ = writeln!(o, ", pid {}", Num(j.get("pid")));
    if let Some(d) = j.get("socket_drops").num() {
        let _ = writeln!(o, "  socket drops (kernel): {d}");
    }
    items_line(&mut o, "  dropped (no peer): ", j.get("drops"));
    if let Json::Arr(peers) = j.get("peers") {
        for p in peers {
            let name = p.get("name").str().unwrap_or("-");
            let _ = write!(
                o,
                "  peer {}:\n    endpoint: {}\n    latest handshake: ",
                if name.is_empty() {
                    "(command line)"
                } else {
                    name
                },
                p.get("endpoint").str().unwrap_or("(none)"),
            );
            match p.get("last_handshake_secs").num() {
                Some(a) => {
                    let _ = write!(o, "{a} s ago");
                }
                None => o.push_str("none"),
            }
            let _ = writeln!(
                o,
                "\n    rx: {} packets, {} bytes\n    tx: {} packets, {} bytes",
                Num(p.get("rx_packets")),
                Num(p.get("rx_bytes")),
                Num(p.get("tx_packets")),
                Num(p.get("tx_bytes")),
            );
            items_line(&mut o, "    dropped: ", p.get("drops"));
        }
    }
    o
}

/// The human form of a reflector's document.
fn human_reflect(j: &Json, o: &mut String) {
    let g = |k: &str| Num(j.get(k));
    let _ = writeln!(
        o,
        "reflect {}: {}, queues {}, pid {}, up {} s",
        j.get("device").str().unwrap_or("-"),
        j.get("mode").str().unwrap_or("-"),
        g("queues"),
        g("pid"),
        g("uptime_secs")
    );
    items_line(o, "  addresses: ", j.get("addresses"));
    if items(o, "  answering for: ", j.get("ranges")) {
        if let Some(m) = j.get("mac").str() {
            o.push_str(" as ");
            o.push_str(m);
        }
        o.push('\n');
    }
    items_line(o, "  not for (own): ", j.get("excluded"));
    items_line(o, "  offloads: ", j.get("offloads"));
    let _ = writeln!(
        o,
        "  rx: {} packets, {} bytes\n  tx: {} packets, {} bytes\n  super-packets: {}, tx errors {}",
        g("rx_packets"),
        g("rx_bytes"),
        g("tx_packets"),
        g("tx_bytes"),
        g("super_packets"),
        g("tx_errors")
    );
    items_line(o, "  dropped: ", j.get("drops"));
    items_line(o, "  replies: ", j.get("replies"));
    items_line(o, "  ignored: ", j.get("ignored"));
}
