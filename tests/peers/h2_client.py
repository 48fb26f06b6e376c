"""An HTTP/2 client on the python-hyper `h2` library over a raw socket (h2c, prior knowledge).

    h2_client.py HOST PORT STREAMS POST_BYTES

Opens one connection, sends STREAMS concurrent GETs of /h2/N and one POST of POST_BYTES bytes
(more than the 65,535-byte initial window, so the server's WINDOW_UPDATEs are needed), and
prints one JSON line per stream: {"path", "status", "backend", "received", "body"}; then a last line
{"goaway": ...} if the server sent GOAWAY. Exits non-zero on a reset stream or a timeout.
"""

import json
import socket
import sys

import h2.config
import h2.connection
import h2.events

HOST, PORT = sys.argv[1], int(sys.argv[2])
STREAMS, POST_BYTES = int(sys.argv[3]), int(sys.argv[4])
AUTHORITY = f"{HOST}:{PORT}"

sock = socket.create_connection((HOST, PORT), timeout=20)
conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
conn.initiate_connection()
sock.sendall(conn.data_to_send())

paths, responses, pending_body = {}, {}, {}


def headers(method, path, extra=()):
    return [(":method", method), (":scheme", "http"), (":authority", AUTHORITY),
            (":path", path), *extra]


for n in range(STREAMS):
    stream = conn.get_next_available_stream_id()
    paths[stream] = f"/h2/{n}"
    conn.send_headers(stream, headers("GET", paths[stream]), end_stream=True)
post = conn.get_next_available_stream_id()
paths[post] = "/h2/post"
conn.send_headers(post, headers("POST", "/h2/post", [("content-length", str(POST_BYTES))]))
pending_body[post] = b"p" * POST_BYTES
for stream in paths:
    responses[stream] = {"path": paths[stream], "status": None, "backend": None,
                         "received": None, "body": b""}


def send_pending():
    """Sends as much of the POST body as the flow-control windows allow."""
    for stream, data in list(pending_body.items()):
        while data:
            room = min(conn.local_flow_control_window(stream), conn.max_outbound_frame_size)
            if room <= 0:
                break
            chunk, data = data[:room], data[room:]
            conn.send_data(stream, chunk, end_stream=not data)
        pending_body[stream] = data
        if not data:
            del pending_body[stream]


send_pending()
sock.sendall(conn.data_to_send())
ended, goaway = set(), None
while len(ended) < len(paths) and goaway is None:
    data = sock.recv(65536)
    if not data:
        break
    for event in conn.receive_data(data):
        if isinstance(event, h2.events.ResponseReceived):
            fields = dict(event.headers)
            responses[event.stream_id]["status"] = int(fields[b":status"])
            responses[event.stream_id]["backend"] = fields.get(b"x-backend", b"").decode()
            responses[event.stream_id]["received"] = fields.get(b"x-received", b"").decode()
        elif isinstance(event, h2.events.DataReceived):
            responses[event.stream_id]["body"] += event.data
            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            ended.add(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            print(json.dumps({"reset": event.stream_id, "code": int(event.error_code)}))
            sys.exit(1)
        elif isinstance(event, h2.events.ConnectionTerminated):
            goaway = int(event.error_code)
    send_pending()
    sock.sendall(conn.data_to_send())

for stream in sorted(responses):
    response = responses[stream]
    response["body"] = response["body"].decode(errors="replace")
    print(json.dumps(response))
if goaway is not None:
    print(json.dumps({"goaway": goaway}))
conn.close_connection()
sock.sendall(conn.data_to_send())
sock.close()
sys.exit(0 if len(ended) == len(paths) else 1)
