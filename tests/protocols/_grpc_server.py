"""A grpcio server on loopback that counts what it served: the gRPC tests' and benchmark's target.

Run as ``python tests/protocols/_grpc_server.py STUBS [CERT KEY]``, where STUBS is a folder
that ``generate()`` filled with the stubs of ``echo.proto``: it prints ``grpc://127.0.0.1:PORT``
(``grpcs://`` with TLS, given a PEM certificate and key) on the first line of stdout and
serves ``mpswarm.echo.Echo`` (see echo.proto) until SIGTERM. Plain threads, no gevent: the
server is not what is tested. ``Counts`` answers with JSON:
``{"/mpswarm.echo.Echo/Say": {"OK": 5, "NOT_FOUND": 1}, ...}`` (calls by the status returned)
and ``"messages"``: ``{method: messages received or sent in streams}``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from collections import Counter
from concurrent import futures
from pathlib import Path
from typing import Any

PROTO = Path(__file__).with_name("echo.proto")
SERVICE = "/mpswarm.echo.Echo"


def generate(dest: Path) -> Path:
    """Write ``echo_pb2.py`` and ``echo_pb2_grpc.py`` into ``dest`` (grpcio-tools' protoc)."""
    from grpc_tools import protoc

    dest.mkdir(parents=True, exist_ok=True)
    args = ["protoc", f"-I{PROTO.parent}", f"--python_out={dest}", f"--grpc_python_out={dest}"]
    if protoc.main([*args, str(PROTO)]) != 0:
        raise RuntimeError(f"protoc failed on {PROTO}")
    return dest


def counts(url: str, stubs: Path, cert: Path | None = None) -> dict[str, Any]:
    """What the server at ``url`` counted (its ``Counts``), asked with the stubs in ``stubs``
    (and, for grpcs, trusting ``cert``)."""
    import grpc

    sys.path.insert(0, str(stubs))
    try:
        import echo_pb2
        import echo_pb2_grpc
    finally:
        sys.path.remove(str(stubs))
    target = url.partition("://")[2]
    if cert is None:
        channel = grpc.insecure_channel(target)
    else:
        channel = grpc.secure_channel(target, grpc.ssl_channel_credentials(cert.read_bytes()))
    with channel:
        reply = echo_pb2_grpc.EchoStub(channel).Counts(echo_pb2.Note(), timeout=10)
    return dict(json.loads(reply.text))


class Server:
    """This server, in a subprocess on a free loopback port (STUBS, and CERT KEY for TLS)."""

    def __init__(self, stubs: Path, *tls: Path) -> None:
        self.stubs = stubs
        script = Path(__file__)
        self.proc = subprocess.Popen(
            [sys.executable, str(script), str(stubs), *map(str, tls)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        if not self.url.startswith(("grpc://127.0.0.1:", "grpcs://127.0.0.1:")):
            self.close()
            raise AssertionError(f"the gRPC server did not start: {self.url!r}")

    def counts(self, cert: Path | None = None) -> dict[str, Any]:
        return counts(self.url, self.stubs, cert)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def serve(stubs: str, tls: list[str]) -> None:
    import grpc

    sys.path.insert(0, stubs)
    import echo_pb2
    import echo_pb2_grpc

    lock = threading.Lock()
    calls: dict[str, Counter[str]] = {}
    messages: Counter[str] = Counter()

    def count(method: str, status: grpc.StatusCode, streamed: int = 0) -> None:
        with lock:
            calls.setdefault(f"{SERVICE}/{method}", Counter())[status.name] += 1
            messages[f"{SERVICE}/{method}"] += streamed

    class Echo(echo_pb2_grpc.EchoServicer):  # type: ignore[misc,name-defined]
        def Say(self, note: Any, context: Any) -> Any:
            if note.code:
                status = grpc.StatusCode(_by_value[note.code])
                count("Say", status)
                context.abort(status, note.text)
            count("Say", grpc.StatusCode.OK)
            return note

        def Count(self, note: Any, context: Any) -> Any:
            for i in range(note.count):
                yield echo_pb2.Note(text=note.text, count=i)
            count("Count", grpc.StatusCode.OK, note.count)

        def Collect(self, notes: Any, context: Any) -> Any:
            received = sum(1 for _ in notes)
            count("Collect", grpc.StatusCode.OK, received)
            return echo_pb2.Note(count=received)

        def Counts(self, note: Any, context: Any) -> Any:
            with lock:
                table = {name: dict(by_status) for name, by_status in calls.items()}
                return echo_pb2.Note(text=json.dumps({**table, "messages": dict(messages)}))

    _by_value = {code.value[0]: code.value for code in grpc.StatusCode}
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    echo_pb2_grpc.add_EchoServicer_to_server(Echo(), server)
    if tls:
        cert, key = (Path(path).read_bytes() for path in tls)
        port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, cert)]))
    else:
        port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(f"{'grpcs' if tls else 'grpc'}://127.0.0.1:{port}", flush=True)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    server.stop(grace=1).wait()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2:])
