"""The control protocol the app-server peers (asgi_app.py, wsgi_app.py) share with
http_server.py: what a request to a target answers, and the counts the tests read.

  /healthz         200 "ok", or 503 "sick" once made sick (health checks, not counted)
  /control/sick    makes /healthz answer 503      (control: for the test, directly)
  /control/well    makes /healthz answer 200 again
  /control/count   JSON: requests, health checks, the last target and Host seen, and the
                   Host of the last health check
  anything else    200 with the peer's name as body (counted)
"""

import json
import threading


class PeerState:
    """One peer's counts and health, safe to use from several threads."""

    def __init__(self, name):
        self.name = name
        self.lock = threading.Lock()
        self.state = {"sick": False, "requests": 0, "health": 0, "health_failed": 0,
                      "absolute": 0, "last_target": "", "last_host": "", "health_host": ""}

    def answer(self, target, host):
        """(status, body) for a request to the raw `target` with this Host, counted."""
        state = self.state
        with self.lock:
            if target == "/healthz":
                state["health"] += 1
                state["health_host"] = host
                state["health_failed"] += int(state["sick"])
                return (503, "sick") if state["sick"] else (200, "ok")
            if target.startswith("/control/"):
                if target == "/control/sick":
                    state["sick"] = True
                elif target == "/control/well":
                    state["sick"] = False
                return 200, json.dumps(state)
            state["requests"] += 1
            state["absolute"] += int(not target.startswith("/"))
            state["last_target"] = target
            state["last_host"] = host
            return 200, self.name
