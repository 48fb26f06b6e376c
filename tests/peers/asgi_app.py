"""A backend as an ASGI app under uvicorn, routing on the raw request target
(`raw_path`, as frameworks that route on it do).

    asgi_app.py NAME

Binds 127.0.0.1 port 0 itself, prints `listening PORT`, and hands the socket to uvicorn
(`uvicorn --port 0` does not say which port it got). Answers as peer_state.py says
(request bodies are read).
"""

import socket
import sys

from peer_state import PeerState

NAME = sys.argv[1] if len(sys.argv) > 1 else "asgi"
PEER = PeerState(NAME)


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    target = scope.get("raw_path", scope["path"].encode()).decode("latin-1")
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
    while (await receive()).get("more_body"):
        pass
    status, body = PEER.answer(target, host)
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
