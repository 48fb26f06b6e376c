#!/usr/bin/env python3
"""User-space instructions per proxied request, counted by valgrind: a figure that does not move
with the machine's noise, for judging an optimisation the wall clock cannot resolve.

One command, run by hand (not in CI):
  benches/instructions.py [--requests 4000] [--haproxy | --bare] [--h2]

It installs what is missing from Debian (valgrind, nginx, h2load; haproxy with --haproxy),
builds portero in release, starts two nginx backends, then runs the balancer under callgrind
twice with the same config as benches/compare.py: once for 200 requests and once for 200 +
--requests (HTTP/1.1 keep-alive, 16 connections, h2load --h1; with --h2, HTTP/2 over TLS, 100
streams over 10 connections as in compare.py's h2-tls). The difference divided by
--requests is what one request costs, start-up and shut-down cancelling out. Kernel time is not
counted; benches/compare.py measures the whole.

--bare counts examples/bare_proxy.rs instead: hyper's HTTP/1 server and client with nothing of
portero's between them, the floor under portero's request path while both sides are hyper's.
"""

import argparse
import glob
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compare  # noqa: E402  (the same configs, fleet and installer)

WARM = 200


def counted(argv, work, name, port, requests, load):
    """Instructions the process under `argv` ran, serving `requests` requests sent by `load`."""
    out = work / f"callgrind.{name}"
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"] + argv,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        compare.wait_for_http(port, deadline_s=120.0)
        result = subprocess.run(["h2load", "-n", str(requests), "-t1"] + load,
                                capture_output=True, text=True)
        if f"{requests} succeeded" not in result.stdout:
            raise RuntimeError(f"not every request succeeded:\n{result.stdout}")
    finally:
        # Twice: the first starts a graceful drain, the second stops at once.
        for _ in range(2):
            os.killpg(proc.pid, signal.SIGINT)
        proc.wait()
    total = 0
    for part in glob.glob(f"{out}*"):
        with open(part) as f:
            for line in f:
                if line.startswith(("summary:", "totals:")):
                    total += int(line.split()[1])
                    break
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--haproxy", action="store_true", help="count HAProxy instead")
    parser.add_argument("--bare", action="store_true",
                        help="count examples/bare_proxy.rs, a proxy of hyper alone")
    parser.add_argument("--h2", action="store_true", help="HTTP/2 over TLS instead of HTTP/1.1")
    args = parser.parse_args()
    if args.bare and (args.haproxy or args.h2):
        parser.error("--bare serves plain HTTP/1.1 only, and counts itself, not HAProxy")
    compare.TOOLS.update({"valgrind": "valgrind"})
    compare.install_missing()
    portero = None if args.haproxy or args.bare else compare.build_portero()
    bare = compare.build_bare() if args.bare else None
    work = Path(tempfile.mkdtemp(prefix="portero-instructions-"))
    fleet = compare.Fleet()
    try:
        backends = [compare.free_port(), compare.free_port()]
        for i, port in enumerate(backends):
            conf = work / f"backend{i + 1}.conf"
            conf.write_text(compare.nginx_backend_config(work, f"backend{i + 1}", port))
            fleet.start(f"backend{i + 1}", ["nginx", "-p", str(work), "-c", str(conf)],
                        compare.LOAD_CPU, work)
        for port in backends:
            compare.wait_for_http(port)
        cert, key, bundle = compare.make_certificate(work)
        ports = {"http": compare.free_port(), "https": compare.free_port(),
                 "admin": compare.free_port()}
        if args.bare:
            argv = compare.bare_argv(bare, ports["http"], backends)
            name = "bare_proxy"
        elif args.haproxy:
            conf = work / "haproxy.cfg"
            conf.write_text(compare.haproxy_config(ports, backends, bundle))
            argv, name = ["haproxy", "-db", "-f", str(conf)], "haproxy"
        else:
            conf = work / "portero.toml"
            conf.write_text(compare.portero_config(ports, backends, cert, key))
            argv, name = [str(portero), "run", "--config", str(conf)], "portero"
        if args.h2:
            load = ["-c", "10", "-m", "10", f"https://127.0.0.1:{ports['https']}/"]
        else:
            load = ["--h1", "-c", "16", f"http://127.0.0.1:{ports['http']}/"]
        base = counted(argv, work, f"{name}.warm", ports["http"], WARM, load)
        full = counted(argv, work, f"{name}.full", ports["http"], WARM + args.requests, load)
        kind = "h2 over TLS" if args.h2 else "HTTP/1.1"
        print(f"{name}: {(full - base) / args.requests:,.0f} instructions per {kind} request "
              f"(user space, {args.requests} requests; callgrind files in {work})")
    finally:
        fleet.stop()


if __name__ == "__main__":
    main()
