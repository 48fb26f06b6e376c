"""A backend on Python's stdlib http.server, routing on the raw request target as such
applications do: `GET http://host/healthz` does NOT match `/healthz` here.

    http_server.py NAME [PORT]

Binds 127.0.0.1:PORT (0 by default), prints `listening PORT`, and answers:
  /healthz         200 "ok", or 503 "sick" once made sick (health checks, not counted)
  /control/sick    makes /healthz answer 503      (control: for the test, directly)
  /control/well    makes /healthz answer 200 again
  /control/degraded  makes /healthz answer 200 "degraded" (a status check passes it)
  /control/count   JSON: requests, health checks, the last target and Host seen, and the
                   Host of the last health check
  /page            an HTML page that opens a WebSocket to /ws and writes the echo in the DOM
  /ws              a WebSocket echo (RFC 6455, text frames); "done" releases /hold
  /hold            waits until the page has written the echo (holds the load event)
  anything else    200 with NAME as body, `x-backend: NAME` and `x-received: BODY_BYTES`
Every request that is not a health check or control is counted.
"""

import base64
import hashlib
import json
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = sys.argv[1]
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 0
LOCK = threading.Lock()
STATE = {"sick": False, "degraded": False, "requests": 0, "health": 0, "health_failed": 0,
         "absolute": 0, "last_target": "", "last_host": "", "health_host": ""}
ECHOED = threading.Event()
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

PAGE = """<!doctype html>
<html><head><title>ws</title></head><body>
<p id="out">waiting</p>
<script>
const ws = new WebSocket("ws://" + location.host + "/ws");
ws.onopen = () => ws.send("hello from chromium");
ws.onmessage = (event) => {
  document.getElementById("out").textContent = "echo: " + event.data;
  ws.send("done");
};
ws.onerror = () => { document.getElementById("out").textContent = "websocket error"; };
</script>
<img src="/hold" alt="">
</body></html>
"""


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body in one write, without Nagle: otherwise every response waits out the
    # client's delayed ACK (40 ms).
    disable_nagle_algorithm = True
    wbufsize = 65536

    def log_message(self, *args):
        pass

    def reply(self, status, body, content_type="text/plain", extra=()):
        data = body.encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        self.send_header("x-backend", NAME)
        for key, value in extra:
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def control(self):
        with LOCK:
            if self.path == "/control/sick":
                STATE["sick"] = True
            elif self.path == "/control/degraded":
                STATE["degraded"] = True
            elif self.path == "/control/well":
                STATE["sick"] = STATE["degraded"] = False
            body = json.dumps(STATE)
        self.reply(200, body, "application/json")

    def healthz(self):
        with LOCK:
            STATE["health"] += 1
            STATE["health_host"] = self.headers.get("host") or ""
            sick, degraded = STATE["sick"], STATE["degraded"]
            STATE["health_failed"] += int(sick or degraded)
        if sick:
            self.reply(503, "sick")
        else:
            self.reply(200, "degraded" if degraded else "ok")

    def read_body(self):
        """The request body's length, read whole (Content-Length or chunked)."""
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return total
                total += len(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return len(self.rfile.read(length)) if length else 0

    def serve(self):
        received = self.read_body()
        with LOCK:
            STATE["requests"] += 1
            STATE["absolute"] += int(not self.path.startswith("/"))
            STATE["last_target"] = self.path
            STATE["last_host"] = self.headers.get("host") or ""
        if self.path == "/page":
            self.reply(200, PAGE, "text/html")
        elif self.path == "/hold":
            ECHOED.wait(30)
            self.reply(200, "", "image/gif")
        elif self.path == "/ws" and self.headers.get("upgrade", "").lower() == "websocket":
            self.websocket()
        else:
            self.reply(200, NAME, extra=[("x-received", str(received))])

    def do_GET(self):
        if self.path == "/healthz":
            self.healthz()
        elif self.path.startswith("/control/"):
            self.control()
        else:
            self.serve()

    do_HEAD = do_GET
    do_POST = do_GET
    do_PUT = do_GET

    def websocket(self):
        key = self.headers["sec-websocket-key"]
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        self.send_response(101)
        self.send_header("upgrade", "websocket")
        self.send_header("connection", "Upgrade")
        self.send_header("sec-websocket-accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        while True:
            frame = read_frame(self.rfile)
            if frame is None:
                return
            opcode, payload = frame
            if opcode == 8:  # close: answer it and stop
                self.wfile.write(bytes([0x88, len(payload[:2])]) + payload[:2])
                return
            if opcode == 1 and payload == b"done":
                ECHOED.set()
            elif opcode == 1:
                self.wfile.write(encode_frame(1, payload))
                self.wfile.flush()


def read_frame(stream):
    """One client frame (masked, unfragmented): (opcode, payload), or None at EOF."""
    head = stream.read(2)
    if len(head) < 2:
        return None
    opcode, length = head[0] & 0x0F, head[1] & 0x7F
    if length == 126:
        length = struct.unpack("!H", stream.read(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", stream.read(8))[0]
    mask = stream.read(4) if head[1] & 0x80 else b"\0\0\0\0"
    data = stream.read(length)
    return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def encode_frame(opcode, payload):
    """A final server frame (servers do not mask)."""
    if len(payload) < 126:
        return bytes([0x80 | opcode, len(payload)]) + payload
    return bytes([0x80 | opcode, 126]) + struct.pack("!H", len(payload)) + payload


if __name__ == "__main__":
    ThreadingHTTPServer.request_queue_size = 128
    server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
    server.daemon_threads = True
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()
