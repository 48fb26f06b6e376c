#!/usr/bin/env python3
"""Slow peers against portero: memory per held connection, availability, and clean-up (issue 19).

One command, run by hand (not in CI; about 2 minutes plus the release build):

    benches/slow_peers.py [--connections 1000] [--seconds 40] [--phases readers,posts]
                          [--portero PATH] [--extra-toml '[timeouts]\\nclient_write = "90s"']

It starts a small asyncio HTTP/1.1 backend (this same file with `--backend PORT`: `GET /big`
answers 1 MiB written in 64 KiB pieces, each awaited with drain() so portero's backpressure
reaches it; POST reads its whole body) and portero in front of it, then runs two phases:

  readers  `slowhttptest -X`: N connections ask for /big and read it a few bytes a second
           through a tiny TCP window, so portero holds a response it cannot deliver.
  posts    `slowhttptest -B`: N connections POST /upload announcing 1 MiB of body and send
           a few bytes every 2 s, so portero holds a request body that never ends.

Both send or read every 1-2 s, well inside timeouts.request_body (30 s) and client_write
(60 s), so portero has no right to cut them during the run. Each second the script samples
portero's RSS and `/status` connections.open; every 2 s a fresh `GET /` through portero must
answer 200 within 5 s. After each phase the attackers are killed and `/status` must show no
connection open within 30 s.

Printed: a table per phase (connections held, RSS baseline and peak, growth per connection
against the 80 KiB target, probes, connections left). Raw numbers go to
target/slow_peers/results.json. Exits non-zero if a probe failed or connections were left
open; missing the per-connection target is only reported ("over target").
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import compare  # noqa: E402  (the shared helpers: build, ports, fd limit, RSS)

ROOT = compare.ROOT
TARGET_KIB = 80
BIG = 1024 * 1024
PIECE = 64 * 1024
SMALL = b"ok\n"


# ---------------------------------------------------------------------------------------------
# The backend: asyncio, not hyper, so the test does not lean on the code under test


async def handle(reader, writer):
    try:
        while True:  # keep-alive: one request after another until the peer closes
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            headers = {k.strip().lower(): v.strip() for k, _, v in
                       (line.partition(":") for line in lines[1:] if line)}
            if "chunked" in headers.get("transfer-encoding", "").lower():
                await read_chunked(reader)
            elif int(headers.get("content-length", "0")):
                await reader.readexactly(int(headers["content-length"]))
            if method == "GET" and path == "/big":
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                             b"Content-Length: %d\r\n\r\n" % BIG)
                piece = b"x" * PIECE
                for _ in range(BIG // PIECE):
                    writer.write(piece)
                    await writer.drain()  # wait for portero to take it: backpressure
            else:
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(SMALL), SMALL))
                await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
        pass
    finally:
        writer.close()


async def read_chunked(reader):
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        await reader.readexactly(size + 2)  # data and its CRLF
        if size == 0:  # (no trailers expected from portero)
            return


def run_backend(port):
    compare.raise_fd_limit()

    async def main():
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=4096)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


# ---------------------------------------------------------------------------------------------
# Setup


def ensure_slowhttptest():
    if shutil.which("slowhttptest"):
        return
    print("slow_peers: installing slowhttptest", flush=True)
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "slowhttptest"], check=True, env=env)


def portero_config(ports, extra):
    return f"""
[admin]
address = "127.0.0.1:{ports['admin']}"

[log]
access_log = "off"
level = "warn"

[[listener]]
name = "http"
address = "127.0.0.1:{ports['http']}"

[[route]]
pool = "app"

[pool.app]
backends = ["127.0.0.1:{ports['backend']}"]

[pool.app.health_check]
path = "/healthz"
interval = "1s"
""" + (extra.replace("\\n", "\n") + "\n" if extra else "")


class Children:
    """Every process started, in its own process group, killed at exit whatever happens."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self.procs = []

    def start(self, name, argv):
        log = open(self.log_dir / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        self.procs.append(proc)
        return proc

    def kill(self, proc):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def interrupt(self, proc, grace=5.0):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                pass
        self.kill(proc)

    def kill_all(self):
        for proc in reversed(self.procs):
            self.kill(proc)


def start_portero(children, portero, config, ports, phase):
    proc = children.start(f"portero-{phase}", [str(portero), "run", "--config", str(config)])
    wait_until(lambda: get(ports["admin"], "/readyz")[0] == 200, "portero /readyz", 15)
    for _ in range(5):  # warm-up: buffers, the upstream pool, the allocator's arenas
        status, body = get(ports["http"], "/big", timeout=10)
        if status != 200 or len(body) != BIG:
            raise RuntimeError(f"warm-up GET /big: {status}, {len(body)} bytes")
    return proc


def get(port, path, timeout=2.0):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return r.status, r.read()


def wait_until(condition, what, deadline_s, every=0.1):
    """Polls `condition` until it returns something true; returns (value, seconds waited)."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        try:
            value = condition()
        except OSError:
            value = None
        if value:
            return value, time.monotonic() - start
        time.sleep(every)
    raise RuntimeError(f"timed out after {deadline_s:.0f} s waiting for {what}")


def open_connections(admin_port):
    return json.loads(get(admin_port, "/status")[1])["connections"]["open"]


# ---------------------------------------------------------------------------------------------
# Measuring


class Prober(threading.Thread):
    """A fresh `GET /` through portero every 2 s: the service must stay available."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.stop, self.results = port, threading.Event(), []

    def probe_once(self):
        start = time.monotonic()
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
                s.settimeout(5)
                s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                reply = b""
                while len(reply) < 4096 and time.monotonic() - start < 5:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
            ok = reply.startswith(b"HTTP/1.1 200") and reply.endswith(SMALL)
            error = None if ok else repr(reply[:60])
        except OSError as e:
            ok, error = False, f"{type(e).__name__}: {e}"
        self.results.append({"ok": ok, "seconds": time.monotonic() - start, "error": error})

    def run(self):
        while not self.stop.is_set():
            self.probe_once()
            self.stop.wait(2.0)


def attacker_argv(phase, port, connections, seconds):
    """slowhttptest for the phase; ramps at 200 connections/s, then holds them."""
    ramp = connections // 200 + 2
    common = ["slowhttptest", "-c", str(connections), "-r", "200", "-l", str(seconds + ramp),
              "-p", "5"]
    if phase == "readers":
        # Window of 1-512 bytes, 64 bytes read every second: portero's write never finishes
        # but never stalls long enough for client_write either.
        return common + ["-X", "-k", "1", "-w", "1", "-y", "512", "-n", "1", "-z", "64",
                         "-u", f"http://127.0.0.1:{port}/big"]
    # 1 MiB announced, up to 16 more bytes every 2 s: always inside request_body.
    return common + ["-B", "-t", "POST", "-s", str(BIG), "-i", "2", "-x", "16",
                     "-u", f"http://127.0.0.1:{port}/upload"]


def run_phase(phase, args, children, pid, ports):
    baseline = compare.rss_bytes(pid)
    print(f"\n{phase}: {args.connections} connections for {args.seconds} s "
          f"(baseline RSS {baseline / 2**20:.1f} MiB)", flush=True)
    attacker = children.start(f"slowhttptest-{phase}",
                              attacker_argv(phase, ports["http"], args.connections, args.seconds))
    prober = Prober(ports["http"])
    prober.start()
    samples = []  # (seconds, rss bytes, open connections)
    start = time.monotonic()
    try:
        for second in range(args.seconds):  # one sample a second, bounded by --seconds
            try:
                opened = open_connections(ports["admin"])
            except OSError:
                opened = None  # the admin port being slow is itself worth seeing in the log
            samples.append((round(time.monotonic() - start, 1), compare.rss_bytes(pid), opened))
            if second % 5 == 4:
                print(f"  t={samples[-1][0]:5.1f}s rss={samples[-1][1] / 2**20:7.1f} MiB "
                      f"open={opened}", flush=True)
            if attacker.poll() is not None:
                print(f"  slowhttptest exited early ({attacker.returncode})", flush=True)
                break
            time.sleep(max(0.0, start + second + 1 - time.monotonic()))
    finally:
        children.interrupt(attacker)  # SIGINT, not KILL: slowhttptest flushes its log first
        prober.stop.set()
        prober.join(10)
    result = summarise(phase, args, baseline, samples, prober.results, drain(ports["admin"]))
    result["slowhttptest"] = attacker_report(children.log_dir / f"slowhttptest-{phase}.log")
    return result


def attacker_report(log):
    """slowhttptest's own view (it logs a status every 5 s): most connected, how it ended."""
    text = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", log.read_text(errors="replace"))
    counts = [int(n) for n in re.findall(r"^connected:\s+(\d+)", text, re.M)]
    closed = re.findall(r"^closed:\s+(\d+)", text, re.M)
    errors = re.findall(r"^error:\s+(\d+)", text, re.M)
    ended = re.findall(r"Exit status:\s*(.+)", text)
    return {"max_connected": max(counts, default=None),
            "closed_at_end": int(closed[-1]) if closed else None,
            "errors_at_end": int(errors[-1]) if errors else None,
            "exit_status": ended[-1].strip() if ended else None}


def drain(admin_port, deadline_s=30.0):
    """After the attackers are gone, how long until /status shows no connection open."""
    try:
        _, took = wait_until(lambda: open_connections(admin_port) == 0, "0 open", deadline_s)
        return {"left_open": 0, "drain_seconds": round(took, 2)}
    except RuntimeError:
        return {"left_open": open_connections(admin_port), "drain_seconds": None}


def summarise(phase, args, baseline, samples, probes, drained):
    peak_rss, peak_open = max(((rss, opened or 0) for _, rss, opened in samples),
                              default=(baseline, 0))
    per_conn = (peak_rss - baseline) / peak_open if peak_open else None
    return {
        "phase": phase, "connections_asked": args.connections, "seconds": args.seconds,
        "max_open": max((o or 0 for _, _, o in samples), default=0),
        "open_at_peak": peak_open, "baseline_rss": baseline, "peak_rss": peak_rss,
        "growth_per_connection": per_conn,
        "target_ok": per_conn is not None and per_conn <= TARGET_KIB * 1024,
        "probes_ok": sum(p["ok"] for p in probes), "probes": len(probes),
        "probe_worst_seconds": max((p["seconds"] for p in probes), default=None),
        "probe_errors": [p["error"] for p in probes if not p["ok"]],
        **drained, "samples": samples,
    }


def print_table(results):
    rows = [
        ("connections held (at peak / max)", lambda r: f"{r['open_at_peak']} / {r['max_open']}"),
        ("baseline RSS", lambda r: f"{r['baseline_rss'] / 2**20:.1f} MiB"),
        ("peak RSS", lambda r: f"{r['peak_rss'] / 2**20:.1f} MiB"),
        ("growth per connection", lambda r: "n/a" if r["growth_per_connection"] is None else
         f"{r['growth_per_connection'] / 1024:.1f} KiB"),
        (f"target <= {TARGET_KIB} KiB", lambda r: "ok" if r["target_ok"] else "over target"),
        ("availability probes ok", lambda r: f"{r['probes_ok']}/{r['probes']}"),
        ("worst probe latency", lambda r: "n/a" if r["probe_worst_seconds"] is None else
         f"{r['probe_worst_seconds'] * 1000:.0f} ms"),
        ("slowhttptest max connected", lambda r: str(r["slowhttptest"]["max_connected"])),
        ("connections left after", lambda r: str(r["left_open"])),
        ("time to drain", lambda r: "n/a" if r["drain_seconds"] is None else
         f"{r['drain_seconds']:.2f} s"),
    ]
    print(f"\n{'':34}" + "".join(f"{r['phase']:>16}" for r in results))
    for label, cell in rows:
        print(f"{label:34}" + "".join(f"{cell(r):>16}" for r in results))
    for r in results:
        for error in r["probe_errors"][:5]:
            print(f"  {r['phase']} probe failed: {error}")


# ---------------------------------------------------------------------------------------------


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=40, help="length of each phase")
    parser.add_argument("--phases", default="readers,posts")
    parser.add_argument("--portero", type=Path, help="use this binary instead of building")
    parser.add_argument("--extra-toml", default="",
                        help=r"TOML appended to the config, e.g. '[timeouts]\nidle = \"5s\"'")
    parser.add_argument("--out", type=Path, default=ROOT / "target" / "slow_peers")
    parser.add_argument("--backend", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.backend:
        return run_backend(args.backend)
    phases = [p for p in args.phases.split(",") if p]
    if set(phases) - {"readers", "posts"}:
        parser.error("--phases takes readers and/or posts")

    ensure_slowhttptest()
    compare.raise_fd_limit()  # inherited by the backend, portero and slowhttptest
    portero = args.portero or compare.build_portero()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="slow_peers."))
    ports = {name: compare.free_port() for name in ("http", "admin", "backend")}
    config = work / "portero.toml"
    config.write_text(portero_config(ports, args.extra_toml))
    subprocess.run([str(portero), "check", "--config", str(config)], check=True)

    children = Children(args.out)
    results = []
    try:
        children.start("backend", [sys.executable, __file__, "--backend", str(ports["backend"])])
        compare.wait_for_http(ports["backend"])
        for phase in phases:
            # A fresh portero per phase: memory the allocator kept from the previous phase
            # would otherwise be reused and hide this phase's growth.
            proc = start_portero(children, portero, config, ports, phase)
            results.append(run_phase(phase, args, children, proc.pid, ports))
            if proc.poll() is not None:
                raise RuntimeError(f"portero exited ({proc.returncode}); see {args.out}")
            children.kill(proc)
    finally:
        children.kill_all()
        shutil.rmtree(work, ignore_errors=True)

    print_table(results)
    (args.out / "results.json").write_text(json.dumps(
        {"connections": args.connections, "seconds": args.seconds, "extra_toml": args.extra_toml,
         "target_kib": TARGET_KIB, "phases": results}, indent=2))
    print(f"\nraw numbers: {args.out / 'results.json'}")
    failed = [r["phase"] for r in results if r["probes_ok"] < r["probes"] or r["left_open"]]
    if failed:
        print(f"FAILED: unavailable or connections left open in {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
