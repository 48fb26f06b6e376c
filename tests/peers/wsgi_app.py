"""A backend as a WSGI app under gunicorn, routing on the raw request target (`RAW_URI`, as
frameworks that route on it do).

    python -m gunicorn --bind 127.0.0.1:PORT --workers 1 --threads 8 wsgi_app:app

with the backend's name in the environment as PEER_NAME (and tests/peers as the working
directory). One worker process, so the counts are in one place. Answers as peer_state.py
says (request bodies are read).
"""

import os
from http import HTTPStatus

from peer_state import PeerState

NAME = os.environ.get("PEER_NAME", "wsgi")
PEER = PeerState(NAME)


def app(environ, start_response):
    target = environ.get("RAW_URI") or environ.get("PATH_INFO", "/")
    length = int(environ.get("CONTENT_LENGTH") or 0)
    if length:
        environ["wsgi.input"].read(length)
    status, body = PEER.answer(target, environ.get("HTTP_HOST", ""))
    data = body.encode()
    start_response(f"{status} {HTTPStatus(status).phrase}", [
        ("content-type", "text/plain"),
        ("content-length", str(len(data))),
        ("x-backend", NAME),
    ])
    return [data]
