"""A gRPC client made with grpcio, for tests/grpc/: runs calls of the `peer.Peer` service
(tests/peers/grpc_server.py) against TARGET and prints one JSON line per call.

Usage: grpc_client.py [--tls CA_FILE NAME] TARGET CASE...
  TARGET is host:port, portero's or a server's; with --tls the channel is TLS (ALPN h2),
  trusting CA_FILE and checking the certificate for NAME.

Cases:
  unary:TEXT             Echo of TEXT
  big:N                  Echo of N bytes (every byte value), compared with what came back
  server_stream:N        Count, N replies
  client_stream:A,B,C    Concat of the messages A, B, C
  bidi:A,B,C             Chat: each message is sent only after the reply to the one before
                         arrived, so it passes only if both directions stream
  bidi_quiet:T:A,B,C     bidi, waiting T seconds before each message after the first (a
                         client that is quiet between messages, as on a watch or chat stream)
  fail:CODE:MESSAGE      Fail, which ends with status CODE and grpc-message MESSAGE
  deadline:T:S           Slow (S seconds) with a deadline of T seconds
  cancel:T:S             Slow (S seconds) with no deadline, cancelled by the client after T
  crash:N                Crash: N replies, then the server dies mid-stream
  watch:S                Watch: one reply after S seconds, nothing before it

Each line: {"case", "code" (name), "code_value", "details", "initial", "trailing" (metadata
as lists of [key, value]; -bin values in hex), "messages" (text), "elapsed" (seconds), and
for big: "sent_sha256", "received_sha256", "received_len"}. No call waits more than 20 s.
"""

import hashlib
import json
import queue
import sys
import time

import grpc

SERVICE = "/peer.Peer/"
LONGEST = 20.0


def metadata(pairs):
    out = []
    for key, value in pairs or ():
        if isinstance(value, bytes):
            value = value.hex()
        out.append([key, value])
    return out


def outcome(call, error=None):
    source = error if error is not None else call
    return {
        "code": source.code().name,
        "code_value": source.code().value[0],
        "details": source.details() or "",
        "initial": metadata(source.initial_metadata()),
        "trailing": metadata(source.trailing_metadata()),
    }


def unary(channel, method, request, timeout=LONGEST):
    stub = channel.unary_unary(SERVICE + method)
    try:
        reply, call = stub.with_call(request, timeout=timeout)
        return [reply], outcome(call)
    except grpc.RpcError as error:
        return [], outcome(None, error)


def cancel(channel, after, request):
    future = channel.unary_unary(SERVICE + "Slow").future(request, timeout=LONGEST)
    time.sleep(after)
    future.cancel()
    try:
        future.result()
    except grpc.FutureCancelledError:
        return [], {"code": "CANCELLED", "code_value": 1, "details": "",
                    "initial": [], "trailing": []}
    except grpc.RpcError as error:
        return [], outcome(None, error)
    return [future.result()], outcome(future)


def server_stream(channel, arg, method="Count"):
    call = channel.unary_stream(SERVICE + method)(str(arg).encode(), timeout=LONGEST)
    replies = []
    try:
        for reply in call:
            replies.append(reply)
    except grpc.RpcError as error:
        return replies, outcome(None, error)
    return replies, outcome(call)


def client_stream(channel, parts):
    stub = channel.stream_unary(SERVICE + "Concat")
    try:
        reply, call = stub.with_call(iter(parts), timeout=LONGEST)
        return [reply], outcome(call)
    except grpc.RpcError as error:
        return [], outcome(None, error)


def bidi(channel, parts, quiet=0.0):
    outbox = queue.Queue()

    def requests():
        while True:
            item = outbox.get(timeout=LONGEST)
            if item is None:
                return
            yield item

    call = channel.stream_stream(SERVICE + "Chat")(requests(), timeout=LONGEST)
    replies = []
    pending = list(parts)
    outbox.put(pending.pop(0))
    try:
        for reply in call:
            replies.append(reply)
            if pending:
                time.sleep(quiet)
            outbox.put(pending.pop(0) if pending else None)
    except grpc.RpcError as error:
        return replies, outcome(None, error)
    return replies, outcome(call)


def run(channel, case):
    kind, _, arg = case.partition(":")
    extra = {}
    started = time.monotonic()
    if kind == "unary":
        replies, result = unary(channel, "Echo", arg.encode())
    elif kind == "big":
        sent = bytes(i % 256 for i in range(int(arg)))
        replies, result = unary(channel, "Echo", sent)
        received = replies[0] if replies else b""
        extra = {
            "sent_sha256": hashlib.sha256(sent).hexdigest(),
            "received_sha256": hashlib.sha256(received).hexdigest(),
            "received_len": len(received),
        }
        replies = []
    elif kind == "server_stream":
        replies, result = server_stream(channel, int(arg))
    elif kind == "watch":
        replies, result = server_stream(channel, arg, "Watch")
    elif kind == "crash":
        replies, result = server_stream(channel, int(arg), "Crash")
    elif kind == "cancel":
        after, _, sleep = arg.partition(":")
        replies, result = cancel(channel, float(after), sleep.encode())
    elif kind == "client_stream":
        replies, result = client_stream(channel, [p.encode() for p in arg.split(",")])
    elif kind == "bidi":
        replies, result = bidi(channel, [p.encode() for p in arg.split(",")])
    elif kind == "bidi_quiet":
        quiet, _, parts = arg.partition(":")
        replies, result = bidi(channel, [p.encode() for p in parts.split(",")], float(quiet))
    elif kind == "fail":
        replies, result = unary(channel, "Fail", arg.encode())
    elif kind == "deadline":
        timeout, _, sleep = arg.partition(":")
        replies, result = unary(channel, "Slow", sleep.encode(), float(timeout))
    else:
        sys.exit("unknown case " + case)
    result.update(extra)
    result["case"] = case
    result["messages"] = [r.decode(errors="replace") for r in replies]
    result["elapsed"] = time.monotonic() - started
    return result


def main():
    args = sys.argv[1:]
    # No retries of the client's own: the test sees exactly what portero answered.
    options = [("grpc.enable_retries", 0)]
    if args[0] == "--tls":
        with open(args[1], "rb") as ca:
            credentials = grpc.ssl_channel_credentials(root_certificates=ca.read())
        options.append(("grpc.ssl_target_name_override", args[2]))
        target, cases = args[3], args[4:]
        channel = grpc.secure_channel(target, credentials, options=options)
    else:
        target, cases = args[0], args[1:]
        channel = grpc.insecure_channel(target, options=options)
    with channel:
        for case in cases:
            print(json.dumps(run(channel, case)), flush=True)


if __name__ == "__main__":
    main()
