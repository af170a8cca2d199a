#!/usr/bin/env python3
"""Writes the seed inputs of every fuzz target into fuzz/seeds/<target>/: the packets,
captures and files the unit tests use (src/wire/ip.rs v4_echo/v6_udp, the ARP and
neighbour solicitation frames of src/wire/tap/tests.rs, the rtnetlink captures of
src/sys/netlink/testdata, the UCI file of src/config/tests.rs, a key file as genkey
writes it, a bridge state file). Run by fuzz/run.sh."""
import os, struct

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF

def v6(a):
    import ipaddress
    return ipaddress.IPv6Address(a).packed

def v4_echo():
    p = bytearray([0x45, 0, 0, 28, 0x12, 0x34, 0x40, 0, 64, 1, 0, 0, 198, 18, 0, 1,
                   198, 18, 0, 41, 8, 0, 0, 0, 0xAB, 0xCD, 0, 1])
    p[10:12] = struct.pack("!H", csum(bytes(p[:20])))
    p[22:24] = struct.pack("!H", csum(bytes(p[20:])))
    return bytes(p)

def v6_packet(nh, payload, src="2001:2::1", dst="2001:2::41", hop=64):
    return struct.pack("!IHBB", 0x60000000, len(payload), nh, hop) + v6(src) + v6(dst) + payload

def icmp6(src, dst, msg):
    pseudo = v6(src) + v6(dst) + struct.pack("!I3xB", len(msg), 58)
    c = csum(pseudo + msg)
    return msg[:2] + struct.pack("!H", c) + msg[4:]

def v6_udp():
    udp = struct.pack("!HHHH", 5000, 7, 12, 0) + b"ping"
    return v6_packet(17, udp)

MAC_US = bytes([0x02, 0, 0x5E, 0, 0, 1])
MAC_PEER = bytes([0x02, 0xAA, 0xBB, 0xCC, 0xDD, 0x01])

def eth(dst, etype, payload):
    return dst + MAC_PEER + struct.pack("!H", etype) + payload

def arp_request(tpa):
    return eth(b"\xff" * 6, 0x0806, struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1) + MAC_PEER
               + bytes([198, 18, 0, 9]) + b"\0" * 6 + bytes(tpa))

def ns_msg(src, dst, target):
    m = struct.pack("!BBHI", 135, 0, 0, 0) + v6(target) + bytes([1, 1]) + MAC_PEER
    return icmp6(src, dst, m)

def ns_frame(target="2001:2::5"):
    src = "2001:2::9"
    dst = "ff02::1:ff00:5"
    return eth(bytes([0x33, 0x33, 0xFF, 0, 0, 5]), 0x86DD,
               v6_packet(58, ns_msg(src, dst, target), src, dst, 255))

def echo6(src="2001:2::9", dst="2001:2::5"):
    return icmp6(src, dst, struct.pack("!BBHHH", 128, 0, 0, 1, 1) + b"abcd")

def gso_read(v6_, udp, n, mss, flags=0x18):
    """A TUN read of a TSO/USO super-packet (as src/wire/gso/tests.rs builds them): virtio
    header (native order, little-endian here) + IP + TCP with timestamps or UDP, the
    transport checksum field holding the pseudo-header sum."""
    proto = 17 if udp else 6
    l4len = (8 if udp else 32) + n
    if v6_:
        ip = struct.pack("!IHBB", 0x60000000, l4len, proto, 64) + v6("2001:2::1") + v6("2001:2::2")
        pseudo = ip[8:40]
    else:
        ip = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + l4len, 1, 0x4000, 64, proto, 0,
                                   bytes([198, 18, 0, 1]), bytes([198, 18, 0, 2])))
        ip[10:12] = struct.pack("!H", csum(bytes(ip)))
        ip = bytes(ip)
        pseudo = ip[12:20]
    if udp:
        l4 = struct.pack("!HHHH", 5000, 53, l4len, 0)
        at = 6
    else:
        l4 = struct.pack("!HHIIBBHHH", 40000, 5201, 1, 9, 0x80, flags, 0xFAF0, 0, 0) \
            + bytes([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2])
        at = 16
    partial = (~csum(pseudo + struct.pack("!HH", proto, l4len))) & 0xFFFF
    l4 = l4[:at] + struct.pack("!H", partial) + l4[at + 2:]
    gso = 5 if udp else (4 if v6_ else 1)
    hdr = struct.pack("<BBHHHH", 1, gso, len(ip) + len(l4), mss, len(ip), at)
    return hdr + ip + l4 + bytes(i % 251 for i in range(n))

def rec(kind, data):
    return struct.pack("<BH", kind, len(data)) + data

def main():
    seeds = {
        "ip_reflect": [v4_echo(), v6_udp()],
        "tap_transform": [b"\0" + arp_request([198, 18, 0, 5]), b"\0" + ns_frame(),
                          b"\x01" + eth(MAC_US, 0x0800, v4_echo()),
                          b"\x01" + eth(MAC_US, 0x86DD, v6_packet(58, echo6(), "2001:2::9", "2001:2::5"))],
        "ndp": [v6("2001:2::9") + v6("ff02::1:ff00:5") + bytes([255])
                + ns_msg("2001:2::9", "ff02::1:ff00:5", "2001:2::5")],
        "icmp": [b"\0" + v4_echo()[20:], b"\x01" + echo6()],
        "text_parsers": [b"198.18.0.0/15", b"2001:2::1/48", b"02:aa:bb:cc:dd:01",
                         b"198.18.0.1:5555", b"[2001:2::1]:5555", b"5555", b"host.example:80"],
        "key_file": [b"# tunbox tunnel key: copy this file to both ends, keep it secret\n"
                     + b"0123456789abcdef" * 4 + b"\n",
                     b"yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n"],
        "uci": [open(os.path.join(ROOT, "openwrt", "files", "tunbox.config"), "rb").read(),
                b"config reflect 'lab'\n\toption dev 'tun7'\n\toption mtu '1400'\n"
                  b"\tlist address '198.18.0.1/15'\n\tlist address '2001:2::1/48'\n"
                  b"config tunnel 'site'\n\toption listen '5555'\n\toption key_file '/etc/tunbox.key'\n"],
        "bridge_state": [b"tunbox-bridge-state 2\nbound netns=4:4026531840 ifindex=2 mac=02:aa:bb:cc:dd:01\n"
                         b"ifname eth0\nbridge br-tunbox\ntap tap0\ncreated_bridge yes\ncreated_tap yes\n"
                         b"port mtu=1400 up=yes mac=02:aa:bb:cc:dd:01 master=-\n"
                         b"addr 198.18.0.2/24 peer=- brd=198.18.0.255 scope=0 flags=128 label=eth0:a%20b%3Dc life=- proto=- metric=-\n"
                         b"route 0.0.0.0/0 table=254 gw=198.18.0.1 src=- metric=0 proto=3 scope=0 type=1 tos=0 onlink=no pref=-\n"
                         b"sysctl /proc/sys/net/bridge/bridge-nf-call-iptables 1\nend\n"],
        "tcp_framing": [b"\x05\xdc\x01" + b"\x00\x03abc\x00\x01z", b"\x00\x10\x07" + b"\x00\x20" + b"x" * 32],
        "replay_window": [bytes(range(60)), b"\x01\x00\x00\xff\xff\x01\x00\x00\x04"],
        "noise_messages": [b"\x00\x01\x00\x00\x00" + bytes(76), b"\x01\x02\x00\x00\x00" + bytes(56),
                           b"\x02\x04\x00\x00\x00" + bytes(40)],
        "tunnel_pair": [bytes([3, 0, 6, 0, 4, 0, 1, 0, 6, 0, 4, 0, 4, 9, 6, 0, 7, 0, 0, 20, 2, 0]),
                        bytes([2, 0, 7, 0, 6, 0, 12, 0, 5, 1, 4, 0, 7, 0, 16, 40] + [1] * 40)],
        "netlink": [],
        # records: kind (even: a TUN read to segment, odd: a packet; & 2: flush), u16 LE length
        "gso": [rec(0, gso_read(False, False, 4000, 1000)), rec(2, gso_read(True, False, 3000, 700)),
                rec(0, gso_read(False, True, 2500, 1000)) + rec(1, v4_echo()),
                rec(0, gso_read(False, False, 1000, 300, 0x10)) + rec(0, gso_read(True, False, 900, 300, 0x10))
                + rec(2, gso_read(False, False, 1000, 300))],
        # argument lists, NUL-separated, as the command line tests use them
        "command_line": [b"\x00".join(a.split()) for a in (
            b"reflect --dev tun0 --address 198.18.0.1/15 --mtu 1400",
            b"tunnel --remote 198.18.0.1:5555 --key-file /k --route 198.18.9.0/24",
            b"probe --rate 50M --size 64,1500 198.18.0.41",
            b"bridge up --ifname eth0 --tap tap0", b"genkey -",
            b"config show @reflect[0]", b"help tunnel", b"status --json")],
    }
    for f in ("link.hex", "addr.hex", "route4.hex", "route6.hex"):
        path = os.path.join(ROOT, "src", "sys", "netlink", "testdata", f)
        lines = [bytes.fromhex(l.strip()) for l in open(path) if l.strip()]
        seeds["netlink"] += lines + [b"".join(lines)]
    for target, items in seeds.items():
        d = os.path.join(HERE, target)
        os.makedirs(d, exist_ok=True)
        for i, data in enumerate(items):
            with open(os.path.join(d, "seed-%02d" % i), "wb") as fh:
                fh.write(data)
        print(target, len(items))

main()
