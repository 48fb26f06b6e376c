"""A backend as an ASGI app under uvicorn, routing on the raw request target
(`raw_path`, as frameworks that route on it do).

    asgi_app.py NAME

Binds 127.0.0.1 port 0 itself, prints `listening PORT`, and hands the socket to uvicorn
(`uvicorn --port 0` does not say which port it got). Same protocol as http_server.py:
  /healthz         200 "ok", or 503 "sick" once made sick (health checks, not counted)
  /control/sick    makes /healthz answer 503      (control: for the test, directly)
  /control/well    makes /healthz answer 200 again
  /control/count   JSON: requests, health checks, the last target and Host seen, and the
                   Host of the last health check
  anything else    200 with NAME as body and `x-backend: NAME` (request bodies are read)
"""

import json
import socket
import sys

NAME = sys.argv[1] if len(sys.argv) > 1 else "asgi"
STATE = {"sick": False, "requests": 0, "health": 0, "health_failed": 0,
         "absolute": 0, "last_target": "", "last_host": "", "health_host": ""}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    headers = dict(scope["headers"])
    while (await receive()).get("more_body"):
        pass
    if target == "/healthz":
        STATE["health"] += 1
        STATE["health_host"] = headers.get(b"host", b"").decode("latin-1")
        STATE["health_failed"] += int(STATE["sick"])
        status, body = (503, "sick") if STATE["sick"] else (200, "ok")
    elif target.startswith("/control/"):
        if target == "/control/sick":
            STATE["sick"] = True
        elif target == "/control/well":
            STATE["sick"] = False
        status, body = 200, json.dumps(STATE)
    else:
        STATE["requests"] += 1
        STATE["absolute"] += int(not target.startswith("/"))
        STATE["last_target"] = target
        STATE["last_host"] = headers.get(b"host", b"").decode("latin-1")
        status, body = 200, NAME
    data = body.encode()
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"text/plain"),
        (b"content-length", str(len(data)).encode()),
        (b"x-backend", NAME.encode()),
    ]})
    await send({"type": "http.response.body", "body": data})


if __name__ == "__main__":
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # connections wait in the backlog until uvicorn accepts
    print(f"listening {sock.getsockname()[1]}", flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
