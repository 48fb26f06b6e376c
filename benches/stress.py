#!/usr/bin/env python3
"""The stress scenario of issue 10: load ramps up while the pool grows, then shrinks.

Shaped like the platform's JMeter test. portero sits in front of `stress_backend` nodes of
limited capacity (examples/stress_backend.rs: W worker slots of S ms each, ~W*1000/S req/s per
node). h2load drives HTTP/1.1 keep-alive load in steps of 8, 16, 32 and 64 connections. The pool
starts with one node; in the 64-connection phase two nodes join through the discovery file
(`[pool.app.discovery] file`, rewritten atomically), then the first node leaves and is stopped.
Every membership change is timed when the file is written and when portero's `/status` shows it.

Output (default target/stress/): latency.svg (p50/p99 and req/s per second, membership changes
marked), report.html, summary.json, the raw h2load logs and portero's log. Exits non-zero when
any request failed. Run by hand, not in CI; about 90 s on a 2-core machine:

    benches/stress.py [--out DIR] [--workers 16] [--service-ms 20] [--time-scale 1.0]
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# (connections, seconds, [(seconds into the phase, action, node indexes)])
PHASES = [
    (8, 10, []),
    (16, 10, []),
    (32, 10, []),
    (64, 40, [(6, "add", [1]), (14, "add", [2]), (28, "remove", [0]), (31, "stop", [0])]),
]
NODES = 3


@dataclass
class Event:
    action: str
    nodes: list
    written: float  # seconds since the start of load
    visible: float | None = None  # when portero's /status agreed (None for "stop")
    members: int = 0


@dataclass
class Run:
    t0: float = 0.0
    events: list = field(default_factory=list)
    phases: list = field(default_factory=list)  # dicts: clients, start, end, h2load counters


# ---------------------------------------------------------------------------- setup


def ensure_h2load():
    if shutil.which("h2load"):
        return
    print("h2load missing: installing nghttp2-client", flush=True)
    sudo = ["sudo"] if os.geteuid() != 0 and shutil.which("sudo") else []
    subprocess.run(sudo + ["apt-get", "update", "-qq"], check=True)
    subprocess.run(sudo + ["apt-get", "install", "-y", "-qq", "nghttp2-client"], check=True)


def build():
    """cargo build; returns (portero, stress_backend) paths as cargo reports them."""
    cmd = ["cargo", "build", "--release", "--bin", "portero", "--example", "stress_backend",
           "--message-format=json-render-diagnostics"]
    out = subprocess.run(cmd, cwd=ROOT, check=True, stdout=subprocess.PIPE, text=True).stdout
    paths = {}
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
            paths[msg["target"]["name"]] = msg["executable"]
    return paths["portero"], paths["stress_backend"]


def free_port():
    # The kernel picks a free port; it is released at once and reused by the child. A race with
    # another process is possible but unlikely on loopback.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(condition, what, deadline_s=10.0, every=0.02):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(every)
    raise RuntimeError(f"timed out waiting for {what}")


def can_connect(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def can_pin():
    return bool(shutil.which("taskset")) and (os.cpu_count() or 1) >= 2


class Children:
    """Every process we start, stopped (TERM, then KILL) whatever happens."""

    def __init__(self):
        self.procs = []

    def start(self, cmd, cpu=None, **kwargs):
        if cpu is not None and can_pin():
            cmd = ["taskset", "-c", str(cpu)] + cmd
        proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def stop(self, proc, grace=3.0):
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def stop_all(self):
        for proc in reversed(self.procs):
            self.stop(proc)


# ---------------------------------------------------------------------------- membership


def write_members(path, addresses):
    doc = {"backends": [{"address": a, "weight": 1} for a in addresses]}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)  # atomic: portero never reads half a file


def live_members(admin_port):
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/status", timeout=1) as r:
        status = json.load(r)
    pool = next(p for p in status["pools"] if p["name"] == "app")
    return {b["address"] for b in pool["backends"] if b["state"] == "healthy"}


def change_members(run, admin_port, path, addresses, action, nodes):
    """Rewrites the feed and waits until portero's /status shows exactly this healthy set."""
    written = time.time()
    write_members(path, addresses)
    wait_for(lambda: live_members(admin_port) == set(addresses), f"members {addresses}", 10, 0.05)
    event = Event(action, nodes, written - run.t0, time.time() - run.t0, len(addresses))
    run.events.append(event)
    print(f"  t={event.written:6.2f}s {action} {nodes}: written, visible after "
          f"{(event.visible - event.written) * 1000:.0f} ms -> {len(addresses)} backends",
          flush=True)


# ---------------------------------------------------------------------------- load


def parse_h2load(text):
    counters = {}
    # "requests: 9404 total, 9468 started, ... 0 failed, 0 errored, 0 timeout"
    # "status codes: 9404 2xx, 0 3xx, 0 4xx, 0 5xx"
    for line in text.splitlines():
        if line.startswith(("requests:", "status codes:")):
            for part in line.split(":", 1)[1].split(","):
                n, name = part.split()
                counters[name] = int(n)
    return counters


def run_load(args, run, children, nodes, ports):
    """Runs the phases back to back, acting on membership at the scheduled offsets."""
    feed = ports["feed"]
    members = [nodes[0]["address"]]
    run.t0 = time.time()
    for index, (clients, seconds, actions) in enumerate(PHASES):
        seconds *= args.time_scale
        log = args.out / f"h2load-{index + 1}.tsv"
        log.unlink(missing_ok=True)  # h2load appends to an existing log
        start = time.time()
        cmd = ["h2load", "--h1", "-c", str(clients), "-t", "1", "-D", f"{round(seconds * 1000)}ms",
               f"--log-file={log}", f"http://127.0.0.1:{ports['listen']}/"]
        h2 = children.start(cmd, cpu=0, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
        print(f"phase {index + 1}: {clients} connections for {seconds:.0f} s", flush=True)
        for offset, action, which in actions:
            time.sleep(max(0.0, start + offset * args.time_scale - time.time()))
            if action == "stop":
                for n in which:
                    children.stop(nodes[n]["proc"])
                run.events.append(Event("stop", which, time.time() - run.t0, None, len(members)))
                print(f"  t={run.events[-1].written:6.2f}s stop {which}: process ended", flush=True)
                continue
            for n in which:
                address = nodes[n]["address"]
                members = members + [address] if action == "add" else \
                    [m for m in members if m != address]
            change_members(run, ports["admin"], feed, members, action, which)
        out, _ = h2.communicate(timeout=seconds + 30)
        (args.out / f"h2load-{index + 1}.out").write_text(out)
        if h2.returncode != 0 or not log.exists():
            raise RuntimeError(f"h2load failed (exit {h2.returncode}):\n{out}")
        counters = parse_h2load(out)
        run.phases.append({"phase": index + 1, "clients": clients, "start": start - run.t0,
                           "end": time.time() - run.t0, "h2load": counters, "log": log.name})


# ---------------------------------------------------------------------------- analysis


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[rank]


def read_rows(args, run):
    """(end time in s since t0, status, latency in ms) for every request h2load logged."""
    rows = []
    for phase in run.phases:
        for line in (args.out / phase["log"]).read_text().splitlines():
            start_us, status, dur_us = line.split("\t")[:3]
            end = (int(start_us) + int(dur_us)) / 1e6 - run.t0
            rows.append((end, int(status), int(dur_us) / 1000))
    rows.sort()
    return rows


def stats(rows, seconds):
    lat = sorted(r[2] for r in rows)
    return {"requests": len(rows), "rps": len(rows) / seconds if seconds > 0 else 0.0,
            "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99),
            "max_ms": lat[-1] if lat else 0.0}


def buckets(rows, end):
    per_second = [[] for _ in range(int(end))]  # whole seconds only: the last one is partial
    for row in rows:
        if 0 <= row[0] < len(per_second):
            per_second[int(row[0])].append(row)
    return [{"t": i, **stats(b, 1.0)} for i, b in enumerate(per_second)]


def segments(rows, run):
    """Phases cut at each membership change portero showed: one row per steady state."""
    changes = [(e.visible if e.visible is not None else e.written, e.members) for e in run.events]

    def members_at(t):
        current = 1
        for at, members in changes:
            if at <= t:
                current = members
        return current

    out = []
    for phase in run.phases:
        a0, b0 = phase["start"], phase["end"]
        bounds = [a0] + sorted(at for at, _ in changes if a0 < at < b0) + [b0]
        for a, b in zip(bounds, bounds[1:]):
            inside = [r for r in rows if a <= r[0] < b]
            out.append({"phase": phase["phase"], "clients": phase["clients"],
                        "backends": members_at(a), "from_s": round(a, 2), "to_s": round(b, 2),
                        **stats(inside, b - a)})
    return out


def count_errors(rows, run):
    non_2xx = sum(1 for r in rows if not 200 <= r[1] < 300)
    failed = sum(p["h2load"].get("failed", 0) for p in run.phases)
    errored = sum(p["h2load"].get("errored", 0) for p in run.phases)
    timeout = sum(p["h2load"].get("timeout", 0) for p in run.phases)
    # A failed stream shows in the log as status -1 and in h2load's failed/errored counters:
    # the sum over-counts rather than hides anything. The target is zero either way.
    return {"non_2xx_logged": non_2xx, "h2load_failed": failed, "h2load_errored": errored,
            "h2load_timeout": timeout, "total": non_2xx + failed + errored + timeout}


# ---------------------------------------------------------------------------- report


def nice_ceiling(value):
    step = 10 ** max(0, len(str(int(max(value, 1)))) - 1)
    for m in (1, 2, 2.5, 5, 10):
        if value <= m * step:
            return m * step
    return 10 * step


def event_label(e):
    sign = {"add": "+", "remove": "-", "stop": "stop "}[e.action]
    names = ",".join(f"b{n + 1}" for n in e.nodes)
    return f"{sign}{names}" + ("" if e.action == "stop" else f" ({e.members})")


def svg_chart(per_second, run, title):
    """Two panels sharing the time axis: latency (p50, p99) above, req/s below."""
    w, left, right, top = 960, 64, 24, 40
    panels = [("latency (ms)", ["p99_ms", "p50_ms"], ["#d62728", "#1f77b4"], 250),
              ("requests/s", ["rps"], ["#2ca02c"], 150)]
    t_end = max(1, len(per_second))
    x = lambda t: left + (w - left - right) * t / t_end  # noqa: E731
    parts, y0 = [], top
    for label, keys, colours, h in panels:
        peak = nice_ceiling(max([b[k] for b in per_second for k in keys] + [1]))
        y = lambda v, y0=y0, h=h, peak=peak: y0 + h - h * v / peak  # noqa: E731
        parts.append(f'<rect x="{left}" y="{y0}" width="{w - left - right}" height="{h}" '
                     'fill="none" stroke="#999"/>')
        for i in range(5):
            v = peak * i / 4
            parts.append(f'<line x1="{left}" x2="{w - right}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                         f'stroke="#eee"/><text x="{left - 6}" y="{y(v) + 4:.1f}" '
                         f'text-anchor="end">{v:g}</text>')
        parts.append(f'<text x="14" y="{y0 + h / 2}" transform="rotate(-90 14 {y0 + h / 2})" '
                     f'text-anchor="middle">{label}</text>')
        for key, colour in zip(keys, colours):
            points = " ".join(f"{x(b['t'] + 0.5):.1f},{y(b[key]):.1f}" for b in per_second
                              if b["requests"])
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" '
                         'stroke-width="1.6"/>')
        for phase in run.phases[1:]:
            px = x(phase["start"])
            parts.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{y0}" y2="{y0 + h}" '
                         'stroke="#888" stroke-dasharray="2,3"/>')
        for e in run.events:
            ex = x(e.visible if e.visible is not None else e.written)
            colour = "#9467bd" if e.action == "stop" else "#000"
            parts.append(f'<line x1="{ex:.1f}" x2="{ex:.1f}" y1="{y0}" y2="{y0 + h}" '
                         f'stroke="{colour}" stroke-dasharray="6,3"/>')
        y0 += h + 40
    for phase in run.phases:
        parts.append(f'<text x="{x(phase["start"]) + 4:.1f}" y="{top + 14}" fill="#555">'
                     f'{phase["clients"]} conns</text>')
    for i, e in enumerate(run.events):
        ex = x(e.visible if e.visible is not None else e.written)
        parts.append(f'<text x="{ex + 3:.1f}" y="{top + 30 + 13 * (i % 4)}">{event_label(e)}'
                     '</text>')
    for t in range(0, t_end + 1, 10):
        parts.append(f'<text x="{x(t):.1f}" y="{y0 - 24}" text-anchor="middle">{t}</text>')
    parts.append(f'<text x="{w / 2}" y="{y0 - 6}" text-anchor="middle">seconds since start '
                 'of load (dotted: load steps; dashed: membership visible in /status)</text>')
    legend = [("p99", "#d62728"), ("p50", "#1f77b4"), ("req/s", "#2ca02c")]
    for i, (name, colour) in enumerate(legend):
        lx = w - right - 200 + 70 * i
        parts.append(f'<line x1="{lx}" x2="{lx + 18}" y1="24" y2="24" stroke="{colour}" '
                     f'stroke-width="3"/><text x="{lx + 22}" y="28">{name}</text>')
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{y0}" '
            f'viewBox="0 0 {w} {y0}" font-family="sans-serif" font-size="11">'
            f'<rect width="100%" height="100%" fill="#fff"/>'
            f'<text x="{left}" y="24" font-size="14" font-weight="bold">{title}</text>'
            + "".join(parts) + "</svg>\n")


def html_report(summary, svg):
    s = summary["setup"]
    rows = "".join(
        f"<tr><td>{g['phase']}</td><td>{g['clients']}</td><td>{g['backends']}</td>"
        f"<td>{g['from_s']:.1f}-{g['to_s']:.1f}</td><td>{g['requests']}</td>"
        f"<td>{g['rps']:.0f}</td><td>{g['p50_ms']:.1f}</td><td>{g['p99_ms']:.1f}</td></tr>"
        for g in summary["segments"])
    events = "".join(
        f"<li>{e['label']}: file written at {e['written']:.2f} s"
        + (f", visible in /status at {e['visible']:.2f} s" if e["visible"] is not None else "")
        + "</li>" for e in summary["events"])
    err = summary["errors"]
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>portero stress</title>
<style>body{{font-family:sans-serif;max-width:1000px;margin:2em auto}}
td,th{{padding:2px 10px;text-align:right}}table{{border-collapse:collapse}}
tr:nth-child(even){{background:#f4f4f4}}</style></head><body>
<h1>portero stress scenario</h1>
<p>{summary['date']} on {s['machine']}. {s['nodes']} <code>stress_backend</code> nodes of
{s['workers']} slots x {s['service_ms']} ms (nominally {s['node_capacity_rps']} req/s each) behind
portero (round robin, health checks every 1 s, access log off), membership from a discovery
file re-read every second. Load: {s['h2load']}, HTTP/1.1 keep-alive, in steps of
{', '.join(str(p['clients']) for p in summary['phases'])} connections. CPU pinning:
{s['pinning']}.</p>
<h2>Errors: {err['total']}</h2><p>non-2xx responses {err['non_2xx_logged']}, h2load failed
{err['h2load_failed']}, errored {err['h2load_errored']}, timeouts {err['h2load_timeout']}
over {summary['requests']} requests.</p>
<h2>Membership</h2><ul>{events}</ul>
{svg}
<h2>Per phase (cut at each membership change)</h2>
<table><tr><th>phase</th><th>conns</th><th>backends</th><th>from-to (s)</th><th>requests</th>
<th>req/s</th><th>p50 ms</th><th>p99 ms</th></tr>{rows}</table>
</body></html>
"""


def summarise(args, run, nodes, h2load_version):
    rows = read_rows(args, run)
    end = run.phases[-1]["end"]
    per_second = buckets(rows, end)
    summary = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(run.t0)),
        "t0_unix": run.t0,  # every time below is in seconds since this instant
        "setup": {"machine": f"{os.cpu_count()} CPUs, {os.uname().sysname} "
                             f"{os.uname().release}",
                  "nodes": len(nodes), "workers": args.workers, "service_ms": args.service_ms,
                  "node_capacity_rps": args.workers * 1000 // args.service_ms,
                  "h2load": h2load_version, "time_scale": args.time_scale,
                  "pinning": "portero on cpu 1, h2load and backends on cpu 0 (taskset)"
                             if can_pin() else "none"},
        "phases": run.phases,
        "events": [{"action": e.action, "nodes": [f"b{n + 1}" for n in e.nodes],
                    "written": round(e.written, 3),
                    "visible": None if e.visible is None else round(e.visible, 3),
                    "backends": e.members, "label": event_label(e)} for e in run.events],
        "requests": len(rows),
        "errors": count_errors(rows, run),
        "segments": segments(rows, run),
        "per_second": per_second,
    }
    svg = svg_chart(per_second, run, "portero: latency and throughput while the pool grows and "
                                     "shrinks")
    (args.out / "latency.svg").write_text(svg)
    (args.out / "report.html").write_text(html_report(summary, svg))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    return summary


def print_summary(args, summary):
    print("\nphase conns backends  seconds       requests  req/s  p50 ms  p99 ms")
    for g in summary["segments"]:
        print(f"{g['phase']:5} {g['clients']:5} {g['backends']:8}  {g['from_s']:5.1f}-"
              f"{g['to_s']:5.1f} {g['requests']:10} {g['rps']:6.0f} {g['p50_ms']:7.1f} "
              f"{g['p99_ms']:7.1f}")
    err = summary["errors"]
    print(f"\nerrors: {err['total']} ({err['non_2xx_logged']} non-2xx, {err['h2load_failed']} "
          f"failed, {err['h2load_errored']} errored, {err['h2load_timeout']} timeouts) over "
          f"{summary['requests']} requests")
    print(f"report: {args.out / 'report.html'}  chart: {args.out / 'latency.svg'}")


# ---------------------------------------------------------------------------- main


PORTERO_CONFIG = """\
[timeouts]
shutdown_grace = "0s"
drain = "2s"

[log]
access_log = "off"
level = "info"

[admin]
address = "127.0.0.1:{admin}"

[[listener]]
name = "http"
address = "127.0.0.1:{listen}"

[pool.app.discovery]
file = "{feed}"
refresh = "1s"

[pool.app.health_check]
path = "/healthz"
interval = "1s"
timeout = "500ms"
"""


def start_stack(args, children, portero, backend, tmp):
    ports = {"listen": free_port(), "admin": free_port(), "feed": tmp / "backends.json"}
    nodes = []
    for i in range(NODES):
        port = free_port()
        cmd = [backend, "--listen", f"127.0.0.1:{port}", "--workers", str(args.workers),
               "--service-ms", str(args.service_ms), "--name", f"b{i + 1}"]
        nodes.append({"address": f"127.0.0.1:{port}", "proc": children.start(cmd, cpu=0)})
        wait_for(lambda port=port: can_connect(port), f"backend b{i + 1}")
    write_members(ports["feed"], [nodes[0]["address"]])
    config = tmp / "portero.toml"
    config.write_text(PORTERO_CONFIG.format(admin=ports["admin"], listen=ports["listen"],
                                            feed=ports["feed"]))
    subprocess.run([portero, "check", "--config", str(config)], check=True,
                   stdout=subprocess.DEVNULL)
    log = open(args.out / "portero.log", "w")  # noqa: SIM115 (closed with the process)
    children.start([portero, "run", "--config", str(config)], cpu=1, stdout=log,
                   stderr=subprocess.STDOUT)
    wait_for(lambda: live_members(ports["admin"]) == {nodes[0]["address"]}
             if can_connect(ports["admin"]) else False, "portero ready")
    return nodes, ports


def on_sigterm(*_):
    # A SIGTERM (`timeout`, a closed session) unwinds like Ctrl-C, through main's finally.
    raise KeyboardInterrupt


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "target" / "stress")
    parser.add_argument("--workers", type=int, default=16)
    parser.add_argument("--service-ms", type=int, default=20)
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="multiply every phase and offset (e.g. 0.3 for a quick try)")
    args = parser.parse_args()
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    ensure_h2load()
    print("building portero and stress_backend (release)", flush=True)
    portero, backend = build()
    version = subprocess.run(["h2load", "--version"], stdout=subprocess.PIPE,
                             text=True).stdout.strip()
    signal.signal(signal.SIGTERM, on_sigterm)
    children, run = Children(), Run()
    with tempfile.TemporaryDirectory(prefix="portero-stress-") as tmp:
        try:
            nodes, ports = start_stack(args, children, portero, backend, Path(tmp))
            print(f"portero on 127.0.0.1:{ports['listen']}, admin :{ports['admin']}, "
                  f"{NODES} backends ready, b1 in the pool", flush=True)
            run_load(args, run, children, nodes, ports)
        except KeyboardInterrupt:
            print("\ninterrupted: stopping everything", file=sys.stderr)
            return 130
        finally:
            children.stop_all()
    summary = summarise(args, run, nodes, version)
    print_summary(args, summary)
    return 0 if summary["errors"]["total"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
