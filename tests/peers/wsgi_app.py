"""A backend as a WSGI app under gunicorn, routing on the raw request target (`RAW_URI`, as
frameworks that route on it do).

    python -m gunicorn --bind 127.0.0.1:PORT --workers 1 --threads 8 wsgi_app:app

with the backend's name in the environment as PEER_NAME. One worker process, so the counts
are in one place. Same protocol as http_server.py:
  /healthz         200 "ok", or 503 "sick" once made sick (health checks, not counted)
  /control/sick    makes /healthz answer 503      (control: for the test, directly)
  /control/well    makes /healthz answer 200 again
  /control/count   JSON: requests, health checks, the last target and Host seen, and the
                   Host of the last health check
  anything else    200 with NAME as body and `x-backend: NAME` (request bodies are read)
"""

import json
import os
import threading

NAME = os.environ.get("PEER_NAME", "wsgi")
LOCK = threading.Lock()
STATE = {"sick": False, "requests": 0, "health": 0, "health_failed": 0,
         "absolute": 0, "last_target": "", "last_host": "", "health_host": ""}


def app(environ, start_response):
    target = environ.get("RAW_URI") or environ.get("PATH_INFO", "/")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    with LOCK:
        if target == "/healthz":
            STATE["health"] += 1
            STATE["health_host"] = environ.get("HTTP_HOST", "")
            STATE["health_failed"] += int(STATE["sick"])
            status, body = ("503 Service Unavailable", "sick") if STATE["sick"] else ("200 OK", "ok")
        elif target.startswith("/control/"):
            if target == "/control/sick":
                STATE["sick"] = True
            elif target == "/control/well":
                STATE["sick"] = False
            status, body = "200 OK", json.dumps(STATE)
        else:
            STATE["requests"] += 1
            STATE["absolute"] += int(not target.startswith("/"))
            STATE["last_target"] = target
            STATE["last_host"] = environ.get("HTTP_HOST", "")
            status, body = "200 OK", NAME
    data = body.encode()
    start_response(status, [
        ("content-type", "text/plain"),
        ("content-length", str(len(data))),
        ("x-backend", NAME),
    ])
    return [data]
