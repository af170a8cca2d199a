#!/usr/bin/env python3
"""tunbox against its peers, in one run (see bench/compare.sh, which builds and calls this).

Reflector (one namespace, device MTU 1500): the C reference (reflect_ref.c), tunbox as
built before this work (TUNBOX_BEFORE, optional) and tunbox. With TUNBOX_BEFORE the tunnel
half also measures that build's encrypted UDP tunnel ("tunbox enc UDP (before)").
Tunnel (two namespaces joined by a veth pair, tunnel MTU 1400): veth alone (the ceiling,
no userspace hop), tunbox encrypted UDP (crypto threads as the CPUs, and --threads 1) /
encrypted TCP / plaintext UDP / plaintext TCP, boringtun-cli
(WireGuard), OpenVPN 2.6 with AES-256-GCM (TLS, certificates made here with openssl), a
simpletun-style C reference over TCP and over UDP (simpletun.c) and socat TUN over UDP.

Per path and round: iperf3 TCP Mb/s (SECS seconds), iperf3 UDP 64-byte datagrams
received per second (SECS seconds), average ping RTT (PINGS echoes 1 ms apart, at most 10 s),
and CPU% of the path's own processes (both ends for tunnels; utime+stime from
/proc/PID/stat) during the TCP run, hence Mb/s per core-second, and during the UDP run,
hence CPU µs per delivered packet (uspp). Medians over ROUNDS
rounds; a metric whose rounds spread by more than 15% of its median is flagged.

Every device, address and route lives in namespaces named tbx-cmp-*-PID that this
script creates and removes (also on failure or Ctrl-C); only 198.18.0.0/15 is used.
"""
import atexit
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROUNDS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
SECS = int(os.environ.get("SECS", "4"))
PINGS = int(os.environ.get("PINGS", "2000"))
ONLY = os.environ.get("ONLY", "")  # "reflector" or "tunnel" to run one half
BIN = os.environ["BENCH_BIN"]  # directory with reflect_ref, simpletun
TUNBOX = os.environ["TUNBOX"]
TUNBOX_BEFORE = os.environ.get("TUNBOX_BEFORE", "")
# PATHS=a,b: only the paths whose names contain one of these (case-insensitive) are run
PATHS = [p.strip().lower() for p in os.environ.get("PATHS", "").split(",") if p.strip()]
BORINGTUN = os.environ.get("BORINGTUN", "")
CLK = os.sysconf("SC_CLK_TCK")
PID = os.getpid()
NS_R = f"tbx-cmp-r-{PID}"
NS_A = f"tbx-cmp-a-{PID}"
NS_B = f"tbx-cmp-b-{PID}"
TMP = tempfile.mkdtemp(prefix="tbx-cmp-")
procs = []  # every process this script started and has not reaped


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def sh(*args, ns=None, check=True, timeout=30, capture=True):
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(args)
    r = subprocess.run(cmd, capture_output=capture, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {r.stderr.strip()}")
    return r.stdout if capture else ""


def spawn(name, *args, ns, env=None):
    """Starts a tool inside a namespace; `ip netns exec` execs it, so the pid is the tool's."""
    out = open(os.path.join(TMP, f"{name}.log"), "w")
    p = subprocess.Popen(["ip", "netns", "exec", ns] + list(args), stdout=out,
                         stderr=subprocess.STDOUT, env=env, start_new_session=True)
    p.logname = name
    procs.append(p)
    return p


def stop(ps):
    for p in ps:
        if p.poll() is None:
            p.terminate()
    for p in ps:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        if p in procs:
            procs.remove(p)


def cleanup():
    stop(list(procs))
    for ns in (NS_R, NS_A, NS_B):
        # anything left in our namespaces was started by this script (iperf3, ping)
        r = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        for pid in r.stdout.split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    subprocess.run(["rm", "-rf", TMP])


atexit.register(cleanup)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
signal.signal(signal.SIGINT, lambda *_: sys.exit(1))


def tail(p):
    try:
        with open(os.path.join(TMP, f"{p.logname}.log")) as f:
            return f.read()[-1500:]
    except OSError:
        return ""


def cpu_ticks(ps):
    total = 0
    for p in ps:
        try:
            with open(f"/proc/{p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (all threads)
        except OSError:
            pass
    return total


def wait_for(cond, secs, what):
    end = time.time() + secs
    while time.time() < end:
        if cond():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def dev_exists(ns, dev):
    return subprocess.run(["ip", "-n", ns, "link", "show", dev], capture_output=True).returncode == 0


def iperf(ns_srv, ns_cli, addr, args, ps):
    """One bounded iperf3 run; returns (json end section, cpu% of ps during it)."""
    srv = spawn("iperf3-srv", "timeout", str(SECS + 20), "iperf3", "-s", "-1", "-p", "5201",
                ns=ns_srv)
    time.sleep(0.4)
    t0, c0 = time.time(), cpu_ticks(ps)
    try:
        out = sh("timeout", str(SECS + 15), "iperf3", "-c", addr, "-p", "5201", "-t", str(SECS),
                 "-J", *args, ns=ns_cli, check=False, timeout=SECS + 20)
    finally:
        t1, c1 = time.time(), cpu_ticks(ps)
        stop([srv])
    try:
        end = json.loads(out)["end"]
    except (ValueError, KeyError):
        return None, None
    return end, 100.0 * (c1 - c0) / CLK / (t1 - t0)


def measure(ns_srv, ns_cli, addr, ps, flows=False):
    """TCP Mb/s, UDP 64-byte pps, ping RTT µs, CPU% during TCP; with `flows` also TCP
    over 4 connections at once (what spreads over a multi-queue device's queues)."""
    res = {}
    end, cpu = iperf(ns_srv, ns_cli, addr, [], ps)
    if end and "sum_received" in end:
        res["tcp"] = end["sum_received"]["bits_per_second"] / 1e6
        res["cpu"] = cpu if ps else None
    if flows:
        end, _ = iperf(ns_srv, ns_cli, addr, ["-P", "4"], ps)
        if end and "sum_received" in end:
            res["tcp4"] = end["sum_received"]["bits_per_second"] / 1e6
    end, cpu = iperf(ns_srv, ns_cli, addr, ["-u", "-b", "0", "-l", "64"], ps)
    if end and "sum" in end:
        u = end["sum"]
        res["pps"] = (u["packets"] - u["lost_packets"]) / u["seconds"]
        # the sender floods (-b 0) and the rest is lost before the tool: on a small box
        # packets/s follows the tool's share of the CPUs, CPU per packet its own cost
        if ps and res["pps"]:
            res["uspp"] = cpu / 100 / res["pps"] * 1e6
    # `ping -f` reports 1-3 µs averages on this kernel even through two userspace hops
    # (its timestamps are not the packets'), so: echoes 1 ms apart, bounded to 10 s
    out = sh("ping", "-q", "-i", "0.001", "-c", str(PINGS), "-w", "10", addr, ns=ns_cli,
             check=False, timeout=20)
    for line in out.splitlines():
        if line.startswith("rtt"):
            res["rtt"] = float(line.split("=")[1].split("/")[1]) * 1000
    if "rtt" not in res:
        log(f"  no RTT: ping to {addr} answered nothing ({out.strip()[-200:]!r})")
    return res


# ---------------------------------------------------------------- reflector


def has_queues(binary):
    r = subprocess.run([binary, "reflect", "--help"], capture_output=True, text=True)
    return "--queues" in r.stdout + r.stderr


def reflector_paths():
    paths = [("C reference", "ref", None, [])]
    if TUNBOX_BEFORE:
        paths.append(("tunbox (before)", "tunbox", TUNBOX_BEFORE, []))
    if has_queues(TUNBOX):
        # offloads alone, then offloads and a queue per CPU (the default)
        paths.append(("tunbox, 1 queue", "tunbox", TUNBOX, ["--queues", "1"]))
    paths.append(("tunbox", "tunbox", TUNBOX, []))
    return selected(paths)


def run_reflector(kind, binary, extra):
    if kind == "ref":
        p = spawn("reflect-ref", f"{BIN}/reflect_ref", "tbxr0", ns=NS_R)
        wait_for(lambda: dev_exists(NS_R, "tbxr0"), 5, "reflect_ref's device")
        sh("ip", "addr", "add", "198.18.0.1/15", "dev", "tbxr0", ns=NS_R)
        sh("ip", "link", "set", "tbxr0", "up", ns=NS_R)
    else:
        p = spawn("reflect-tunbox", binary, "reflect", "--dev", "tbxr0", "--address",
                  "198.18.0.1/15", *extra, ns=NS_R)
        wait_for(lambda: "UP" in sh("ip", "link", "show", "tbxr0", ns=NS_R, check=False),
                 5, "tunbox reflect's device")
    try:
        return measure(NS_R, NS_R, "198.18.7.7", [p], flows=True)
    finally:
        stop([p])
        if p.returncode not in (0, -15):
            log(f"  reflector exited {p.returncode}: {tail(p)}")
        elif kind == "tunbox":
            first = tail(p).splitlines()
            log("  " + " | ".join(l for l in first if "offload" in l or "queue" in l)[:200])
        time.sleep(0.3)


# ---------------------------------------------------------------- tunnels

A_IP, B_IP = "198.18.0.1", "198.18.0.2"
TA, TB = "198.19.0.1", "198.19.0.2"


def tunnel_up(dev_a, dev_b, addr=True):
    for ns, dev, ip in ((NS_A, dev_a, TA), (NS_B, dev_b, TB)):
        wait_for(lambda: dev_exists(ns, dev), 10, f"device {dev}")
        if addr:
            sh("ip", "addr", "add", f"{ip}/24", "dev", dev, ns=ns)
        sh("ip", "link", "set", dev, "mtu", "1400", "up", ns=ns)


def reachable():
    return subprocess.run(["ip", "netns", "exec", NS_B, "ping", "-c1", "-W1", TA],
                          capture_output=True).returncode == 0


def start_tunbox(transport, plain, extra=(), binary=None):
    binary = binary or TUNBOX
    key = ["--plaintext"] if plain else ["--key-file", f"{TMP}/key"]
    common = ["--transport", transport, "--dev", "tbxtb0", "--mtu", "1400", *key, *extra]
    a = spawn("tunbox-a", binary, "tunnel", "--listen", "5555", "--address", f"{TA}/24", *common,
              ns=NS_A)
    time.sleep(0.3)
    b = spawn("tunbox-b", binary, "tunnel", "--remote", f"{A_IP}:5555", "--address", f"{TB}/24",
              *common, ns=NS_B)
    return [a, b]


def start_boringtun():
    ps = []
    names = {}
    for side, ns in (("a", NS_A), ("b", NS_B)):
        # the UAPI socket lives in /var/run/wireguard/NAME.sock (shared): a unique name
        dev = f"tbxw{side}{PID % 100000}"
        names[side] = dev
        ps.append(spawn(f"boringtun-{side}", BORINGTUN, "--foreground",
                        "--disable-drop-privileges", "--log", f"{TMP}/boringtun-{side}.out",
                        dev, ns=ns))
    keys = {}
    for side in "ab":
        priv = subprocess.run(["wg", "genkey"], capture_output=True, text=True).stdout.strip()
        pub = subprocess.run(["wg", "pubkey"], input=priv, capture_output=True,
                             text=True).stdout.strip()
        with open(f"{TMP}/wg-{side}", "w") as f:
            f.write(priv + "\n")
        keys[side] = pub
    for side, ns, other, ep in (("a", NS_A, "b", B_IP), ("b", NS_B, "a", A_IP)):
        dev = names[side]
        wait_for(lambda: os.path.exists(f"/var/run/wireguard/{dev}.sock"), 10, "boringtun UAPI")
        sh("wg", "set", dev, "private-key", f"{TMP}/wg-{side}", "listen-port", "51820", "peer",
           keys[other], "allowed-ips", "198.19.0.0/24", "endpoint", f"{ep}:51820", ns=ns)
    tunnel_up(names["a"], names["b"])
    return ps


def make_certs():
    if os.path.exists(f"{TMP}/ca.crt"):
        return
    o = ["openssl"]
    sh(*o, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
       "-keyout", f"{TMP}/ca.key", "-out", f"{TMP}/ca.crt", "-days", "2", "-subj", "/CN=tbx-ca")
    for n in ("srv", "cli"):
        sh(*o, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", f"{TMP}/{n}.key", "-out", f"{TMP}/{n}.csr", "-subj", f"/CN=tbx-{n}")
        sh(*o, "x509", "-req", "-in", f"{TMP}/{n}.csr", "-CA", f"{TMP}/ca.crt", "-CAkey",
           f"{TMP}/ca.key", "-CAcreateserial", "-out", f"{TMP}/{n}.crt", "-days", "2")


def start_openvpn():
    make_certs()
    ps = []
    for side, ns, n, lip, rip, local, remote, role in (
        ("a", NS_A, "srv", TA, TB, A_IP, B_IP, "--tls-server"),
        ("b", NS_B, "cli", TB, TA, B_IP, A_IP, "--tls-client"),
    ):
        args = ["openvpn", "--dev", "tbxov0", "--dev-type", "tun", "--proto", "udp",
                "--local", local, "--lport", "1194", "--remote", remote, "--rport", "1194",
                "--ifconfig", lip, rip, role, "--ca", f"{TMP}/ca.crt", "--cert",
                f"{TMP}/{n}.crt", "--key", f"{TMP}/{n}.key", "--data-ciphers", "AES-256-GCM",
                "--cipher", "AES-256-GCM", "--tun-mtu", "1400", "--disable-dco", "--verb", "3"]
        if role == "--tls-server":
            args += ["--dh", "none"]
        ps.append(spawn(f"openvpn-{side}", *args, ns=ns))
    tunnel_up("tbxov0", "tbxov0", addr=False)
    sh("ip", "route", "replace", "198.19.0.0/24", "dev", "tbxov0", ns=NS_A)
    sh("ip", "route", "replace", "198.19.0.0/24", "dev", "tbxov0", ns=NS_B)
    return ps


def start_simpletun(transport):
    a = spawn(f"simpletun-{transport}-a", f"{BIN}/simpletun", "tbxst0", transport, "-s", "5556",
              ns=NS_A)
    time.sleep(0.3)
    b = spawn(f"simpletun-{transport}-b", f"{BIN}/simpletun", "tbxst0", transport, "-c", A_IP,
              "5556", "5556", ns=NS_B)
    tunnel_up("tbxst0", "tbxst0")
    return [a, b]


def start_socat():
    ps = []
    for side, ns, local, remote, tip in (("a", NS_A, A_IP, B_IP, TA), ("b", NS_B, B_IP, A_IP, TB)):
        ps.append(spawn(f"socat-{side}", "socat", "-b", "65536",
                        f"UDP-DATAGRAM:{remote}:5557,bind={local}:5557",
                        f"TUN:{tip}/24,tun-name=tbxso0,tun-type=tun,iff-no-pi,iff-up", ns=ns))
    tunnel_up("tbxso0", "tbxso0", addr=False)
    return ps


def tunnel_paths():
    paths = [("veth (no userspace hop)", None),
             ("tunbox enc UDP", lambda: start_tunbox("udp", False)),
             ("tunbox enc UDP, 1 thread",
              lambda: start_tunbox("udp", False, ["--threads", "1"])),
             ("tunbox enc TCP", lambda: start_tunbox("tcp", False)),
             ("tunbox plain UDP", lambda: start_tunbox("udp", True)),
             ("tunbox plain TCP", lambda: start_tunbox("tcp", True))]
    if TUNBOX_BEFORE:
        paths.append(("tunbox enc UDP (before)",
                      lambda: start_tunbox("udp", False, binary=TUNBOX_BEFORE)))
    if BORINGTUN:
        paths.append(("boringtun-cli (WireGuard)", start_boringtun))
    paths += [("OpenVPN AES-256-GCM", start_openvpn),
              ("simpletun C, TCP", lambda: start_simpletun("tcp")),
              ("simpletun C, UDP", lambda: start_simpletun("udp")),
              ("socat TUN/UDP", start_socat)]
    return selected(paths)


def selected(paths):
    """The paths PATHS names (all when it is empty)."""
    if not PATHS:
        return paths
    return [p for p in paths if any(w in p[0].lower() for w in PATHS)]


def run_tunnel(name, starter):
    if starter is None:
        return measure(NS_A, NS_B, A_IP, [])
    ps = starter()
    try:
        wait_for(reachable, 15, f"{name} to pass a ping")
        return measure(NS_A, NS_B, TA, ps)
    except RuntimeError:
        for p in ps:
            log(f"--- {p.logname}:\n{tail(p)}")
        raise
    finally:
        stop(ps)
        time.sleep(0.3)


# ---------------------------------------------------------------- table


def fmt(v, nd=0):
    return "-" if v is None else f"{v:,.{nd}f}"


def summarize(rows):
    """rows: name -> list of per-round dicts. Returns name -> medians, flags."""
    med = {}
    for name, rounds in rows.items():
        m, flags = {}, []
        for k in ("tcp", "tcp4", "pps", "uspp", "rtt", "cpu"):
            vals = [r[k] for r in rounds if r.get(k) is not None]
            if not vals:
                m[k] = None
                continue
            m[k] = statistics.median(vals)
            if len(vals) > 1 and m[k] and (max(vals) - min(vals)) / m[k] > 0.15:
                nd = 2 if k == "uspp" else 0
                flags.append(f"{k} {min(vals):,.{nd}f}..{max(vals):,.{nd}f}")
        m["eff"] = m["tcp"] / (m["cpu"] / 100) if m.get("tcp") and m.get("cpu") else None
        m["flags"] = flags
        m["n"] = len(rounds)
        med[name] = m
    return med


def table(title, med, flows=False):
    print(f"\n**{title}**\n")
    four = " TCP 4 flows Mb/s |" if flows else ""
    print(f"| path | TCP Mb/s |{four} UDP 64 B pkt/s | CPU µs per UDP pkt | ping RTT µs |"
          f" CPU % (TCP) | Mb/s per core-s | rounds disagree |")
    print("|---|---:|" + ("---:|" if flows else "") + "---:|---:|---:|---:|---:|---|")
    for name, m in med.items():
        four = f" {fmt(m['tcp4'])} |" if flows else ""
        print(f"| {name} | {fmt(m['tcp'])} |{four} {fmt(m['pps'])} | {fmt(m['uspp'], 2)} |"
              f" {fmt(m['rtt'])} | {fmt(m['cpu'])} | {fmt(m['eff'])} |"
              f" {'; '.join(m['flags']) or '-'} |")


def ratios(med, pairs, flows=False):
    keys = ("tcp", "tcp4", "pps", "uspp", "rtt", "eff")
    if not flows:
        keys = tuple(k for k in keys if k != "tcp4")
    four = " TCP 4 flows |" if flows else ""
    print(f"\n| tunbox / peer | TCP |{four} UDP pkt/s | CPU per UDP pkt (lower is better) |"
          f" RTT (lower is better) | Mb/s per core-s |")
    print("|---|" + "---:|" * len(keys))
    for a, b in pairs:
        if a not in med or b not in med:
            continue
        ma, mb = med[a], med[b]
        cells = []
        for k in keys:
            cells.append(f"{ma[k] / mb[k]:.2f}" if ma.get(k) and mb.get(k) else "-")
        print(f"| {a} / {b} | " + " | ".join(cells) + " |")


def main():
    for ns in (NS_R, NS_A, NS_B):
        sh("ip", "netns", "add", ns)
        sh("ip", "link", "set", "lo", "up", ns=ns)
    sh("ip", "link", "add", "tbxcva", "type", "veth", "peer", "name", "tbxcvb", ns=NS_A)
    sh("ip", "link", "set", "tbxcvb", "netns", NS_B, ns=NS_A)
    sh("ip", "addr", "add", f"{A_IP}/24", "dev", "tbxcva", ns=NS_A)
    sh("ip", "addr", "add", f"{B_IP}/24", "dev", "tbxcvb", ns=NS_B)
    sh("ip", "link", "set", "tbxcva", "up", ns=NS_A)
    sh("ip", "link", "set", "tbxcvb", "up", ns=NS_B)
    sh(TUNBOX, "genkey", f"{TMP}/key")
    refl = {name: [] for name, _, _, _ in reflector_paths()} if ONLY != "tunnel" else {}
    tun = {name: [] for name, _ in tunnel_paths()} if ONLY != "reflector" else {}
    for rnd in range(1, ROUNDS + 1):
        log(f"round {rnd}/{ROUNDS}")
        for name, kind, binary, extra in reflector_paths() if refl else []:
            r = run_reflector(kind, binary, extra)
            log(f"  reflector {name}: {r}")
            refl[name].append(r)
        for name, starter in tunnel_paths() if tun else []:
            try:
                r = run_tunnel(name, starter)
            except RuntimeError as e:
                log(f"  tunnel {name}: FAILED: {e}")
                r = {}
            log(f"  tunnel {name}: {r}")
            tun[name].append(r)
    cpus = os.cpu_count()
    print(f"\n{ROUNDS} rounds, {SECS} s per iperf3 run, {PINGS} pings 1 ms apart; {cpus} CPUs; "
          f"kernel {os.uname().release}; medians")
    if refl:
        med = summarize(refl)
        table("TUN reflector (MTU 1500, one namespace)", med, flows=True)
        ratios(med, [("tunbox", "C reference"), ("tunbox, 1 queue", "C reference"),
                     ("tunbox (before)", "C reference"), ("tunbox", "tunbox (before)")],
               flows=True)
    if tun:
        med = summarize(tun)
        table("Tunnel (two namespaces over veth, tunnel MTU 1400)", med)
        ratios(med, [("tunbox enc UDP", "boringtun-cli (WireGuard)"),
                     ("tunbox enc UDP", "OpenVPN AES-256-GCM"),
                     ("tunbox enc TCP", "simpletun C, TCP"),
                     ("tunbox plain TCP", "simpletun C, TCP"),
                     ("tunbox plain UDP", "simpletun C, UDP"),
                     ("tunbox plain UDP", "socat TUN/UDP"),
                     ("tunbox enc UDP", "veth (no userspace hop)"),
                     ("tunbox enc UDP", "tunbox enc UDP (before)")])


if __name__ == "__main__":
    main()
