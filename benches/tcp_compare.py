#!/usr/bin/env python3
"""Side-by-side tcp listeners: portero `protocol = "tcp"` against HAProxy `mode tcp`, one core.

One command, run by hand (not in CI):  benches/tcp_compare.py [--runs 3] [--duration 8]

It installs HAProxy when missing (through compare.py's installer), builds portero and
examples/tcp_load.rs in release, and starts two tcp_load backends. It then starts the
balancers over them, with equivalent configs: least connections, a TCP connect check every
2 s, logging off, one worker. They are HAProxy as shipped (no splicing), HAProxy with
`option splice-auto` (the kernel's splice path: bytes move between sockets through a pipe,
never copied to user space), and portero.
Each balancer runs on cpu 1; the backends and the load on cpu 0. Scenarios, each run against
every balancer in turn, `--runs` times, medians:

  bulk-down   64 sessions, the backends stream and the clients read: bytes/s
  bulk-up     64 sessions, the clients stream and the backends read: bytes/s
  new         64 loops of connect, 16 bytes each way, close: sessions/s, and sessions per
              second of balancer CPU (utime + stime)

Raw figures go to target/tcp-compare/results.json and the table to results.md.
"""

import argparse
import json
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (the machine setup, process fleet and helpers are shared)

ROOT = compare.ROOT
SESSIONS = 64


def build():
    subprocess.run(["cargo", "build", "--release", "--locked", "--bin", "portero",
                    "--example", "tcp_load"], cwd=ROOT, check=True)
    return ROOT / "target/release/portero", ROOT / "target/release/examples/tcp_load"


def haproxy_config(port, backends, splice):
    servers = compare.haproxy_servers(backends)
    return f"""
global
  nbthread 1
  # Each session holds two sockets and, spliced, a pipe: 4,000 fits the 20,000-file limit.
  maxconn 4000

defaults
  mode tcp
  timeout connect 5s
  timeout client 30m
  timeout server 30m
  {"option splice-auto" if splice else ""}

frontend fe
  bind 127.0.0.1:{port} backlog 4096
  default_backend be

backend be
  balance leastconn
{servers}
"""


def portero_config(port, admin, backends):
    listed = ", ".join(f'"127.0.0.1:{b}"' for b in backends)
    return f"""
[log]
access_log = "off"
level = "warn"

[admin]
address = "127.0.0.1:{admin}"

[[listener]]
name = "db"
address = "127.0.0.1:{port}"
protocol = "tcp"
pool = "db"

[pool.db]
backends = [{listed}]
[pool.db.health_check]
kind = "tcp"
interval = "2s"
"""


def wait_for_port(port, deadline_s=15.0):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def run_load(tool, mode, port, duration):
    out = subprocess.run(["taskset", "-c", compare.LOAD_CPU, str(tool), mode,
                          f"127.0.0.1:{port}", str(SESSIONS), str(duration)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(balancers, tool, runs, duration):
    results = {name: {scenario: [] for scenario in ("bulk-down", "bulk-up", "new")}
               for name in balancers}
    order = list(balancers)
    for run in range(runs):
        for scenario in ("bulk-down", "bulk-up", "new"):
            for name in order[run % len(order):] + order[:run % len(order)]:
                proc, port = balancers[name]
                pid = compare.balancer_pid(proc)
                mode = scenario.removeprefix("bulk-")
                run_load(tool, mode, port, 1)  # warm-up: caches and the checks settle
                before = compare.cpu_seconds(pid)
                sample = run_load(tool, mode, port, duration)
                cpu = compare.cpu_seconds(pid) - before
                if scenario == "new":
                    sample["sessions_per_cpu_s"] = sample["sessions_per_s"] * duration / max(cpu, 1e-9)
                results[name][scenario].append(sample)
                print(f"  run {run + 1}/{runs} {scenario:9} {name:14} {sample}", flush=True)
    return results


def table(results):
    def median(name, scenario, key):
        return statistics.median(s[key] for s in results[name][scenario])

    def errors(name, scenario):
        return sum(s["errors"] for s in results[name][scenario])

    rows = ["| scenario | measure | haproxy | haproxy splice-auto | portero | portero / HAProxy | "
            "portero / HAProxy splice | errors (h, hs, p) |", "|---|---|---|---|---|---|---|---|"]
    measures = [("bulk-down", "bytes_per_s", "MB/s", 1e6), ("bulk-up", "bytes_per_s", "MB/s", 1e6),
                ("new", "sessions_per_s", "sessions/s", 1), ("new", "sessions_per_cpu_s",
                                                              "sessions per cpu-s", 1)]
    for scenario, key, unit, scale in measures:
        h = median("haproxy", scenario, key)
        hs = median("haproxy-splice", scenario, key)
        p = median("portero", scenario, key)
        errs = ", ".join(str(errors(n, scenario)) for n in ("haproxy", "haproxy-splice", "portero"))
        rows.append(f"| {scenario} | {unit} | {h / scale:,.0f} | {hs / scale:,.0f} | {p / scale:,.0f} "
                    f"| {p / h:.2f}x | {p / hs:.2f}x | {errs} |")
    return "\n".join(rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8)
    args = parser.parse_args()
    compare.install_missing()
    compare.raise_fd_limit()
    portero, tool = build()
    out_dir = ROOT / "target/tcp-compare"
    out_dir.mkdir(parents=True, exist_ok=True)
    fleet = compare.Fleet()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            backends = [compare.free_port(), compare.free_port()]
            for i, port in enumerate(backends):
                fleet.start(f"backend{i}", [str(tool), "serve", f"127.0.0.1:{port}"],
                            compare.LOAD_CPU, work)
                wait_for_port(port)
            balancers = {}
            for name, splice in (("haproxy", False), ("haproxy-splice", True)):
                port = compare.free_port()
                config = work / f"{name}.cfg"
                config.write_text(haproxy_config(port, backends, splice))
                proc = fleet.start(name, ["haproxy", "-db", "-f", str(config)], compare.BALANCER_CPU, work)
                wait_for_port(port)
                balancers[name] = (proc, port)
            port, admin = compare.free_port(), compare.free_port()
            config = work / "portero.toml"
            config.write_text(portero_config(port, admin, backends))
            proc = fleet.start("portero", [str(portero), "run", "--config", str(config)],
                               compare.BALANCER_CPU, work)
            wait_for_port(port)
            balancers["portero"] = (proc, port)
            print(f"tcp-compare: {args.runs} runs of {args.duration}s, {SESSIONS} sessions",
                  flush=True)
            results = measure(balancers, tool, args.runs, args.duration)
    finally:
        fleet.stop()
    (out_dir / "results.json").write_text(json.dumps(results, indent=2))
    text = table(results)
    (out_dir / "results.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
