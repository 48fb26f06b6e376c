"""A gRPC backend made with grpcio (gRPC's own C core), for tests/grpc/.

Usage: grpc_server.py [PORT]   (default 0: any free port on 127.0.0.1)

Prints `listening PORT` as its first stdout line. No protoc: the service `peer.Peer` is
registered with a generic handler and no serializers, so every message is raw bytes and the
test asserts on exactly what crossed portero.

Methods (requests and replies are bytes):
  Echo       unary: the request back; initial metadata `x-peer-initial: echo`, trailing
             metadata `x-peer-trailer: unary`, `x-peer-bin-bin` (a binary value) and
             `x-peer-port` (this server's port; Concat and Chat send it too).
  Count      server-streaming: request b"N" -> N replies b"reply-0" .. b"reply-(N-1)";
             trailing metadata `x-peer-trailer: count`.
  Concat     client-streaming: the concatenation of every request; trailing metadata
             `x-peer-count: <number of requests>`.
  Chat       bidirectional: each request back as it arrives, prefixed b"echo:".
  Fail       unary: request b"CODE:message" -> ends with that status code (a number) and
             grpc-message, plus trailing metadata `x-peer-trailer: fail`.
  Slow       unary: request b"SECONDS" -> waits that long (or until the call is cancelled,
             e.g. its deadline passes), then answers b"slept" and prints
             `slow ended cancelled=True|False after=SECONDS` to stdout.
  Watch      server-streaming: request b"SECONDS" -> one reply b"event" after that long; as
             with any grpcio stream the response headers go out with that first message, so
             nothing at all is sent before it (a watch or subscription with no event yet).
  Crash      server-streaming: request b"N" -> N replies, then the process exits at once
             (os._exit): a stream cut in the middle, with no trailers.

Health checks: grpcio answers any GET (portero's HTTP/2 probe) with HTTP 200, content-type
application/grpc and grpc-status 2 "Bad method header", whatever the path. So a probe of an
h2c pool of gRPC servers shows that the server's HTTP/2 stack answers (a hung process fails
it, where a TCP connect would still pass from the kernel's backlog), not the service's own
health (grpc.health.v1 needs a gRPC call, which portero's probe does not make).
"""

import os
import sys
import time
from concurrent import futures

import grpc

SERVICE = "peer.Peer"
# The bound port, sent back as trailing metadata `x-peer-port` so a test sees which backend
# of a pool served a call.
PORT = ["0"]


def echo(request, context):
    context.send_initial_metadata((("x-peer-initial", "echo"),))
    context.set_trailing_metadata(
        (
            ("x-peer-trailer", "unary"),
            ("x-peer-bin-bin", b"\x00\x01\xfe\xff"),
            ("x-peer-port", PORT[0]),
        )
    )
    return request


def count(request, context):
    context.set_trailing_metadata((("x-peer-trailer", "count"),))
    for i in range(int(request.decode())):
        yield b"reply-%d" % i


def concat(request_iterator, context):
    parts = list(request_iterator)
    context.set_trailing_metadata(
        (("x-peer-count", str(len(parts))), ("x-peer-port", PORT[0]))
    )
    return b"".join(parts)


def chat(request_iterator, context):
    context.set_trailing_metadata((("x-peer-port", PORT[0]),))
    for request in request_iterator:
        yield b"echo:" + request


def fail(request, context):
    code, _, message = request.decode().partition(":")
    status = next(s for s in grpc.StatusCode if s.value[0] == int(code))
    context.set_trailing_metadata((("x-peer-trailer", "fail"),))
    context.abort(status, message)


def slow(request, context):
    deadline = time.monotonic() + float(request.decode())
    # Bounded: at most the requested time, and it stops early when the call is cancelled.
    started = time.monotonic()
    while time.monotonic() < deadline and context.is_active():
        time.sleep(0.01)
    print(
        "slow ended cancelled=%s after=%.3f"
        % (not context.is_active(), time.monotonic() - started),
        flush=True,
    )
    return b"slept"


def watch(request, context):
    time.sleep(float(request.decode()))
    yield b"event"


def crash(request, context):
    for i in range(int(request.decode())):
        yield b"reply-%d" % i
    # Time for the replies to reach the socket; then the process dies mid-stream.
    time.sleep(0.3)
    os._exit(1)


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    unary = grpc.unary_unary_rpc_method_handler
    handler = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": unary(echo),
            "Count": grpc.unary_stream_rpc_method_handler(count),
            "Concat": grpc.stream_unary_rpc_method_handler(concat),
            "Chat": grpc.stream_stream_rpc_method_handler(chat),
            "Fail": unary(fail),
            "Slow": unary(slow),
            "Watch": grpc.unary_stream_rpc_method_handler(watch),
            "Crash": grpc.unary_stream_rpc_method_handler(crash),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((handler,))
    bound = server.add_insecure_port("127.0.0.1:%d" % port)
    if bound == 0:
        sys.exit("cannot bind 127.0.0.1:%d" % port)
    PORT[0] = str(bound)
    server.start()
    print("listening %d" % bound, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
