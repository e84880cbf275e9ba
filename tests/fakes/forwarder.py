"""A TCP forwarder in its own process, for network cuts that fbloop cannot tell from real ones.

    python -m tests.fakes.forwarder --target 127.0.0.1:8123 [--port 0]

It listens on 127.0.0.1, prints its port on the first line, and pipes every connection to the target.
Killing the process (SIGKILL) is the cut: every open connection drops and new ones are refused. Starting
it again on the same port (``--port``) ends the cut. Point the clients, and the fake server's
``public_url`` (so output URLs go through it too), at the forwarder.
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import threading


def _pipe(source: socket.socket, sink: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)  # pass the end of the stream on


def _connect(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
        upstream.settimeout(None)
    except OSError:
        client.close()
        return
    pipes = [
        threading.Thread(target=_pipe, args=(client, upstream), daemon=True),
        threading.Thread(target=_pipe, args=(upstream, client), daemon=True),
    ]
    for pipe in pipes:
        pipe.start()
    for pipe in pipes:
        pipe.join()
    for end in (client, upstream):
        end.close()


def serve(port: int, target: tuple[str, int]) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(256)
    print(listener.getsockname()[1], flush=True)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_connect, args=(client, target), daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Forward TCP connections on 127.0.0.1 to a target.")
    parser.add_argument("--target", required=True, help="host:port to forward to")
    parser.add_argument("--port", type=int, default=0, help="port to listen on (0 = any free port)")
    args = parser.parse_args(argv)
    host, _, target_port = args.target.rpartition(":")
    with contextlib.suppress(KeyboardInterrupt):
        serve(args.port, (host or "127.0.0.1", int(target_port)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
