#!/usr/bin/env python3
"""Side-by-side load comparison: portero, HAProxy and nginx as a proxy, on the same machine.

One command, run by hand (not in CI):  benches/compare.py [--runs 3] [--duration 8]

It installs what is missing from Debian (haproxy, nginx, wrk, nghttp2-client, openssl), builds
portero in release, starts two nginx backends and the three balancers with equivalent configs
(same backends, round robin, health checks where the balancer has them, logging off, upstream
keep-alive), pins each balancer to cpu 1 and everything else (load generators, backends) to
cpu 0, runs every scenario against every balancer in alternation `--runs` times and prints one
table of medians and ratios to HAProxy. Raw figures go to target/compare/results.json and the
table to target/compare/results.md.

Scenarios (issue 10's targets):
  h1-64      wrk -t1 -c64, HTTP/1.1 keep-alive: requests/s and p99
  h1-1000    wrk -t1 -c1000
  h2-tls     h2load -c10 -m10 over TLS (ALPN h2): requests/s
  tls-new    wrk -c16 with `Connection: close` over TLS: a full handshake per request;
             new connections per second of balancer CPU (the balancer's utime+stime)
  idle-mem   RSS growth of the balancer per idle keep-alive connection (8,000, two requests each)
  h1-64@10k  wrk -t1 -c64 while 9,936 more idle connections are open (10,000 in all); HAProxy
             is skipped: it refuses maxconn above ~9,000 under this machine's 20,000-file limit

--bare adds examples/bare_proxy.rs as a fourth column, in h1-64 and h1-1000: hyper's
server and client with nothing of portero's between them, the floor under portero's request
path for as long as both of its HTTP/1 sides are hyper's.
"""

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BALANCER_CPU = "1"
LOAD_CPU = "0"
TOOLS = {"haproxy": "haproxy", "nginx": "nginx", "wrk": "wrk", "h2load": "nghttp2-client",
         "openssl": "openssl", "taskset": "util-linux"}
IDLE_CONNECTIONS = 8000
TOTAL_AT_SCALE = 10_000


# ---------------------------------------------------------------------------------------------
# Setup


def install_missing():
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if not missing:
        return
    print(f"compare: installing {' '.join(missing)}", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing,
                   check=True, env=env)
    # Debian starts the packaged services on install: they would hold ports and cpu.
    for service in ("haproxy", "nginx"):
        subprocess.run(sudo + ["systemctl", "disable", "--now", service],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def build_portero():
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "portero"], cwd=ROOT,
                   check=True)
    return ROOT / "target" / "release" / "portero"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def raise_fd_limit():
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def make_certificate(work):
    """An ECDSA P-256 certificate for localhost and 127.0.0.1, as PEM files for each balancer."""
    cert, key = work / "site.pem", work / "site.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bundle = work / "site.bundle.pem"  # HAProxy wants certificate and key in one file
    bundle.write_text(cert.read_text() + key.read_text())
    return cert, key, bundle


# ---------------------------------------------------------------------------------------------
# Configs: the same backends, round robin, health checks where available, logging off


def nginx_common(work, name):
    temp = work / f"{name}-temp"
    temp.mkdir(exist_ok=True)
    return f"""
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 20000;
pid {work}/{name}.pid;
error_log {work}/{name}.err warn;
events {{ worker_connections 20000; multi_accept on; }}
"""


def nginx_temp_paths(work, name):
    temp = work / f"{name}-temp"
    return "\n".join(f"  {kind}_temp_path {temp}/{kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))


def nginx_backend_config(work, name, port):
    return nginx_common(work, name) + f"""
http {{
  access_log off;
{nginx_temp_paths(work, name)}
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location = /healthz {{ return 200 "ok\\n"; }}
    location / {{ return 200 "hello from {name}\\n"; }}
  }}
}}
"""


def nginx_proxy_config(work, ports, backends, cert, key):
    servers = "\n".join(f"    server 127.0.0.1:{b};" for b in backends)
    return nginx_common(work, "nginx") + f"""
http {{
  access_log off;
{nginx_temp_paths(work, "nginx")}
  keepalive_requests 10000000;
  keepalive_timeout 75s;
  upstream app {{
{servers}
    keepalive 64;
    keepalive_requests 10000000;
  }}
  server {{
    listen 127.0.0.1:{ports['http']} backlog=4096;
    listen 127.0.0.1:{ports['https']} ssl http2 backlog=4096;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }}
  }}
}}
"""


def haproxy_servers(backends):
    """HAProxy's `server` lines for the backends, each checked every 2 s."""
    return "\n".join(f"  server b{i} 127.0.0.1:{b} check inter 2s" for i, b in enumerate(backends))


def haproxy_config(ports, backends, bundle):
    servers = haproxy_servers(backends)
    return f"""
global
  nbthread 1
  maxconn 9000
  tune.ssl.default-dh-param 2048

defaults
  mode http
  timeout connect 5s
  timeout client 75s
  timeout server 30s
  timeout http-keep-alive 75s
  option http-keep-alive

frontend fe
  bind 127.0.0.1:{ports['http']} backlog 4096
  bind 127.0.0.1:{ports['https']} ssl crt {bundle} alpn h2,http/1.1 backlog 4096
  default_backend be

backend be
  balance roundrobin
  option httpchk GET /healthz
  http-reuse always
{servers}
"""


def portero_config(ports, backends, cert, key):
    listed = ", ".join(f'"127.0.0.1:{b}"' for b in backends)
    return f"""
[log]
access_log = "off"
level = "warn"

[admin]
address = "127.0.0.1:{ports['admin']}"

[[listener]]
name = "http"
address = "127.0.0.1:{ports['http']}"

[[listener]]
name = "https"
address = "127.0.0.1:{ports['https']}"
[listener.tls]
certificates = [ {{ cert = "{cert}", key = "{key}" }} ]

[pool.app]
balance = "round_robin"
backends = [{listed}]

[pool.app.health_check]
path = "/healthz"
interval = "2s"
"""


# ---------------------------------------------------------------------------------------------
# Processes


class Fleet:
    """Every process started, killed at exit whatever happens."""

    def __init__(self):
        self.procs = []

    def start(self, name, argv, cpu, log_dir):
        log = open(log_dir / f"{name}.log", "wb")
        proc = subprocess.Popen(["taskset", "-c", cpu] + argv, stdout=log, stderr=log,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def restart(self, proc, name, argv, cpu, log_dir):
        """A fresh process in place of `proc`, on the same ports."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self.procs.remove(proc)
        return self.start(name, argv, cpu, log_dir)

    def stop(self):
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
        for proc in self.procs:
            proc.wait()


def wait_for_http(port, deadline_s=15.0):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing answered 200 on 127.0.0.1:{port}")


def check_protocols(name, ports):
    """Each balancer must serve h1 and h2 over TLS before it is measured."""
    for args in (["--http1.1"], ["--http2"]):
        out = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code} %{http_version}"]
                             + args + [f"https://127.0.0.1:{ports['https']}/"],
                             capture_output=True, text=True)
        if not out.stdout.startswith("200"):
            raise RuntimeError(f"{name} over TLS {args}: {out.stdout!r} {out.stderr!r}")


def rss_bytes(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def balancer_pid(proc):
    """The balancer itself, not the taskset wrapper (taskset execs, so they are the same)."""
    return proc.pid


# ---------------------------------------------------------------------------------------------
# Load generators and their output


def to_ms(value):
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def run_wrk(url, connections, duration, extra=(), warm_up=True):
    if warm_up:
        # Untimed: every balancer opens its upstream connections and grows its buffers first,
        # so a cold start is not what is measured (h2load has --warm-up-time for the same).
        subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}", "-d1s",
                        *extra, url], capture_output=True, check=True)
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "wrk", "-t1", f"-c{connections}",
                          f"-d{duration}s", "--latency", "--timeout", "5s", *extra, url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    # wrk's socket errors by kind, and responses that were not 2xx/3xx: a "read" error is a
    # connection the balancer closed (or reset) with a request outstanding, a non-2xx one a
    # status it sent (a 502...). Kept apart, so an error can be told from the other.
    kinds = {kind: int(n) for kind, n in
             re.findall(r"\b(connect|read|write|timeout) (\d+)", out)}
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        kinds["non2xx"] = int(non2xx.group(1))
    kinds = {kind: n for kind, n in kinds.items() if n}
    return {"rps": rps, "p99_ms": to_ms(p99.group(1)) if p99 else None,
            "errors": sum(kinds.values()), **({"error_kinds": kinds} if kinds else {})}


def run_h2load(url, duration):
    out = subprocess.run(["taskset", "-c", LOAD_CPU, "h2load", "-c10", "-m10", "-t1",
                          "-D", str(duration), "--warm-up-time", "1", url],
                         capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out).group(1))
    failed = re.search(r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    protocol = re.search(r"Application protocol: (\S+)", out)
    if not protocol or protocol.group(1) != "h2":
        raise RuntimeError(f"h2load did not negotiate h2:\n{out}")
    return {"rps": rps, "errors": sum(int(n) for n in failed.groups())}


def open_idle(port, count):
    """`count` keep-alive connections, two requests each, spread over 127.0.0.2.. sources.
    Two, not one: a balancer that keeps a read buffer between requests has it resident only
    once a request has been read into it (portero did, until issue 21: 6,048 bytes per
    connection after two requests, 2,006 after one)."""
    conns = []
    request = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
    for i in range(count):
        s = socket.socket()
        s.bind((f"127.0.0.{2 + i // 2000}", 0))
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        for _ in range(2):
            s.sendall(request)
            reply = read_response(s)
            if not reply.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"connection {i}: {reply[:80]!r}")
        conns.append(s)
    return conns


def read_response(s):
    """One whole response with a Content-Length body (every balancer here sends one)."""
    reply = b""
    while b"\r\n\r\n" not in reply:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("connection closed by the balancer")
        reply += chunk
    head, body = reply.split(b"\r\n\r\n", 1)
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    while length and len(body) < int(length.group(1)):
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("connection closed mid-body")
        body += chunk
    return reply


def close_all(conns):
    for s in conns:
        s.close()


# ---------------------------------------------------------------------------------------------
# Scenarios: each takes (balancer process, its ports, duration) and returns a dict of figures


def scenario_h1_64(proc, ports, duration):
    return run_wrk(f"http://127.0.0.1:{ports['http']}/", 64, duration)


def scenario_h1_1000(proc, ports, duration):
    return run_wrk(f"http://127.0.0.1:{ports['http']}/", 1000, duration)


def scenario_h2_tls(proc, ports, duration):
    return run_h2load(f"https://127.0.0.1:{ports['https']}/", duration)


def scenario_tls_new(proc, ports, duration):
    pid = balancer_pid(proc)
    before = cpu_seconds(pid)
    result = run_wrk(f"https://127.0.0.1:{ports['https']}/", 16, duration,
                     extra=("-H", "Connection: close"))
    used = cpu_seconds(pid) - before
    result["per_cpu_s"] = result["rps"] * duration / used if used > 0 else None
    return result


def scenario_idle_mem(proc, ports, duration):
    # Run on a freshly started balancer (see `measure`): after load, the allocator keeps memory
    # that new connections would reuse, and the growth would say nothing.
    pid = balancer_pid(proc)
    before = rss_bytes(pid)
    conns = open_idle(ports["http"], IDLE_CONNECTIONS)
    time.sleep(1.0)  # let each balancer settle its per-connection state (portero parks at 25 ms)
    after = rss_bytes(pid)
    close_all(conns)
    return {"bytes_per_conn": (after - before) / IDLE_CONNECTIONS}


def scenario_at_scale(proc, ports, duration):
    conns = open_idle(ports["http"], TOTAL_AT_SCALE - 64)
    try:
        return run_wrk(f"http://127.0.0.1:{ports['http']}/", 64, duration)
    finally:
        close_all(conns)


SCENARIOS = {
    "h1-64": scenario_h1_64,
    "h1-1000": scenario_h1_1000,
    "h2-tls": scenario_h2_tls,
    "tls-new": scenario_tls_new,
    "idle-mem": scenario_idle_mem,
    "h1-64@10k": scenario_at_scale,
}
# The bare proxy serves no TLS, and opens one backend connection per client connection: at
# 10,000 clients that is past this machine's 20,000-file limit.
SKIP = {("haproxy", "h1-64@10k"), ("bare", "h2-tls"), ("bare", "tls-new"),
        ("bare", "idle-mem"), ("bare", "h1-64@10k")}


# ---------------------------------------------------------------------------------------------
# The run


def build_bare():
    subprocess.run(["cargo", "build", "--release", "--locked", "--example", "bare_proxy"],
                   cwd=ROOT, check=True)
    return ROOT / "target" / "release" / "examples" / "bare_proxy"


def bare_argv(bare, port, backends):
    """The bare hyper proxy's command line: listen on `port`, forward to `backends`."""
    return [str(bare), f"127.0.0.1:{port}"] + [f"127.0.0.1:{b}" for b in backends]


def start_bare(fleet, work, bare, backends):
    """The bare hyper proxy: plain HTTP/1.1 only, no health checks, no TLS."""
    ports = {"http": free_port()}
    argv = bare_argv(bare, ports["http"], backends)
    proc = fleet.start("bare", argv, BALANCER_CPU, work)
    wait_for_http(ports["http"])
    return Balancer("bare", proc, ports, argv)


def start_everything(fleet, work, portero, bare=None):
    backends = [free_port(), free_port()]
    for i, port in enumerate(backends):
        name = f"backend{i + 1}"
        conf = work / f"{name}.conf"
        conf.write_text(nginx_backend_config(work, name, port))
        fleet.start(name, ["nginx", "-p", str(work), "-c", str(conf)], LOAD_CPU, work)
    for port in backends:
        wait_for_http(port)
    cert, key, bundle = make_certificate(work)
    balancers = {}
    for name in ("haproxy", "nginx", "portero"):
        ports = {"http": free_port(), "https": free_port(), "admin": free_port()}
        conf = work / f"{name}.conf"
        if name == "haproxy":
            conf.write_text(haproxy_config(ports, backends, bundle))
            argv = ["haproxy", "-db", "-f", str(conf)]
        elif name == "nginx":
            conf.write_text(nginx_proxy_config(work, ports, backends, cert, key))
            argv = ["nginx", "-p", str(work), "-c", str(conf)]
        else:
            conf = work / "portero.toml"
            conf.write_text(portero_config(ports, backends, cert, key))
            subprocess.run([str(portero), "check", "--config", str(conf)], check=True,
                           stdout=subprocess.DEVNULL)
            argv = [str(portero), "run", "--config", str(conf)]
        proc = fleet.start(name, argv, BALANCER_CPU, work)
        wait_for_http(ports["http"])
        check_protocols(name, ports)
        balancers[name] = Balancer(name, proc, ports, argv)
    if bare is not None:
        balancers["bare"] = start_bare(fleet, work, bare, backends)
    return balancers


class Balancer:
    def __init__(self, name, proc, ports, argv):
        self.name, self.proc, self.ports, self.argv = name, proc, ports, argv

    def restart(self, fleet, work):
        self.proc = fleet.restart(self.proc, self.name, self.argv, BALANCER_CPU, work)
        wait_for_http(self.ports["http"])
        time.sleep(1.0)  # past its start-up allocations and first health checks


def versions(portero):
    def first_line(argv):
        try:
            out = subprocess.run(argv, capture_output=True, text=True)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(),
        "kernel": os.uname().release,
        "portero": first_line([str(portero), "--version"]),
        "haproxy": first_line(["haproxy", "-v"]),
        "nginx": first_line(["nginx", "-v"]),
        "openssl": first_line(["openssl", "version"]),
        "wrk": first_line(["wrk", "-v"]),
        "h2load": first_line(["h2load", "--version"]),
    }


def measure(fleet, work, balancers, scenarios, runs, duration):
    results = {s: {b: [] for b in balancers} for s in scenarios}
    order = list(balancers)
    for run in range(runs):
        for scenario in scenarios:
            # Rotate who goes first, so no balancer always meets the machine in the same state.
            for name in order[run % len(order):] + order[:run % len(order)]:
                if (name, scenario) in SKIP:
                    continue
                balancer = balancers[name]
                if balancer.proc.poll() is not None:
                    raise RuntimeError(f"{name} exited ({balancer.proc.returncode})")
                if scenario == "idle-mem":
                    balancer.restart(fleet, work)
                figures = SCENARIOS[scenario](balancer.proc, balancer.ports, duration)
                results[scenario][name].append(figures)
                print(f"  run {run + 1}/{runs} {scenario:10} {name:8} {figures}", flush=True)
    return results


# What each scenario is judged by, the target ratio to HAProxy, and whether less is better.
JUDGED = {
    "h1-64": ("rps", "req/s", 1.0, False),
    "h1-1000": ("rps", "req/s", 1.0, False),
    "h2-tls": ("rps", "req/s", 1.0, False),
    "tls-new": ("per_cpu_s", "handshakes per cpu-s", 1.5, False),
    "idle-mem": ("bytes_per_conn", "bytes/conn", None, True),
    "h1-64@10k": ("rps", "req/s", None, False),
}


def median_of(samples, key):
    values = [s[key] for s in samples if s.get(key) is not None]
    return statistics.median(values) if values else None


def fmt(value, key):
    if value is None:
        return "n/a"
    if key == "p99_ms":
        return f"{value:.2f} ms"
    return f"{value:,.0f}"


def error_cell(total, samples):
    """`3 (read 2, non2xx 1)`: the count of every run, and of what kind."""
    kinds = {}
    for sample in samples:
        for kind, n in sample.get("error_kinds", {}).items():
            kinds[kind] = kinds.get(kind, 0) + n
    detail = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
    return f"{total} ({detail})" if detail else str(total)


def table(results, balancers):
    names = list(balancers)
    lines = ["| scenario | measure | " + " | ".join(names) + " | portero / HAProxy | target |",
             "|---|---|" + "---|" * len(names) + "---|---|"]
    for scenario, per_balancer in results.items():
        key, unit, target, lower_better = JUDGED[scenario]
        medians = {n: median_of(per_balancer.get(n, []), key) for n in names}
        ratio, goal = "n/a", "n/a"
        if medians.get("haproxy") and medians.get("portero"):
            ratio = f"{medians['portero'] / medians['haproxy']:.2f}x"
        if scenario == "idle-mem":
            goal = "<= 4,096 bytes"
        elif scenario == "h1-64@10k":
            base = median_of(results["h1-64"]["portero"], "rps") if "h1-64" in results else None
            if base and medians["portero"]:
                ratio = f"{medians['portero'] / base:.2f}x of h1-64"
            goal = ">= 0.90x of h1-64"
        elif target is not None:
            goal = f">= {target:.1f}x"
        cells = " | ".join(fmt(medians[n], key) for n in names)
        lines.append(f"| {scenario} | {unit} | {cells} | {ratio} | {goal} |")
        if any(median_of(per_balancer.get(n, []), "p99_ms") for n in names):
            cells = " | ".join(fmt(median_of(per_balancer.get(n, []), "p99_ms"), "p99_ms")
                               for n in names)
            lines.append(f"| {scenario} | p99 | {cells} | | no worse than HAProxy |")
        errors = {n: sum(s.get("errors", 0) for s in per_balancer.get(n, [])) for n in names}
        if any(errors.values()):
            cells = " | ".join(error_cell(errors[n], per_balancer.get(n, [])) for n in names)
            lines.append(f"| {scenario} | errors (all runs) | {cells} | | 0 |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="alternating runs (default 3)")
    parser.add_argument("--duration", type=int, default=8, help="seconds per load run (default 8)")
    parser.add_argument("--only", default=",".join(SCENARIOS),
                        help=f"comma-separated scenarios (default all: {','.join(SCENARIOS)})")
    parser.add_argument("--out", default=str(ROOT / "target" / "compare"))
    parser.add_argument("--bare", action="store_true",
                        help="also measure examples/bare_proxy.rs (plain HTTP/1.1 scenarios)")
    args = parser.parse_args()
    scenarios = [s for s in args.only.split(",") if s]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenarios {unknown}")
    if (os.cpu_count() or 1) < 2:
        sys.exit("compare: needs two cpus (balancer on cpu 1, load and backends on cpu 0)")

    install_missing()
    raise_fd_limit()
    portero = build_portero()
    bare = build_bare() if args.bare else None
    fleet = Fleet()
    work = Path(tempfile.mkdtemp(prefix="portero-compare-"))
    try:
        balancers = start_everything(fleet, work, portero, bare)
        time.sleep(2.5)  # a full health-check round everywhere before load
        print(f"compare: {', '.join(scenarios)} x {args.runs} runs of {args.duration}s", flush=True)
        results = measure(fleet, work, balancers, scenarios, args.runs, args.duration)
    finally:
        fleet.stop()
    info = versions(portero)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"machine": info, "results": results}, indent=1))
    rendered = table(results, ["haproxy", "nginx", "portero"] + (["bare"] if bare else []))
    header = "\n".join(f"- {k}: {v}" for k, v in info.items())
    (out / "results.md").write_text(f"{header}\n\n{rendered}\n")
    print()
    print(header)
    print()
    print(rendered)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
