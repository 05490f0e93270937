"""Both HTTP clients against a hostile server: whatever it sends, one request is one counted
failure with a readable error, and the worker's memory stays bounded.

The server (``_hostile_server``) runs in its own process so that only the client's memory is
measured: the peak resident size (``VmHWM``, reset through ``/proc/self/clear_refs``) and what
is still resident afterwards (psutil).
"""

from __future__ import annotations

import gc
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from mpswarm.env import Environment
from mpswarm.event import EventHook
from mpswarm.http.fast import FastHttpSession, FastHttpUser
from mpswarm.http.session import HttpSession
from mpswarm.user.users import HttpUser

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
CAP = 32 * MiB  # the documented default of max_body_size
# The bound of issue #14: a worker's RSS stays within 64 MB of its idle size.
BOUND = 64 * 1000 * 1000


class Events:
    def __init__(self) -> None:
        self.hook = EventHook()
        self.fired: list[dict[str, Any]] = []
        self.hook.add_listener(lambda **kw: self.fired.append(kw))

    def errors(self) -> list[str]:
        return [str(e["exception"]) for e in self.fired if e["exception"] is not None]


class Growth:
    peak = 0  # bytes the peak resident size rose above the start
    kept = 0  # bytes still resident afterwards


@pytest.fixture(scope="module")
def hostile() -> Iterator[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.http._hostile_server"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("port "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.fixture(params=["HttpUser", "FastHttpUser"])
def open_client(request: pytest.FixtureRequest, hostile: str) -> Iterator[Any]:
    """``open_client(events, **options)``: the client of one user of either kind."""
    opened: list[Any] = []

    def start(events: Events, **kwargs: Any) -> Any:
        kind = HttpSession if request.param == "HttpUser" else FastHttpSession
        client = kind(base_url=hostile, request_event=events.hook, **kwargs)
        opened.append(client)
        return client

    yield start
    for client in opened:
        client.close()


def _peak_rss() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc/self/status")


@contextmanager
def memory() -> Iterator[Growth]:
    """How much the process's resident memory grew inside the ``with`` block."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")  # the peak resident size starts again from the current one
    except OSError:
        pytest.skip("cannot reset the peak resident size here")
    process = psutil.Process()
    start = process.memory_info().rss
    growth = Growth()
    yield growth
    growth.peak = _peak_rss() - start
    gc.collect()
    growth.kept = process.memory_info().rss - start


# (path, error text, peak bound). A body that fails at the cap was held up to the cap (32 MiB):
# its bound is the 64 MB of the requirement; one that fails early holds next to nothing.
HOSTILE = [
    ("/chunked", "BodyTooLarge: response body larger than 32 MiB (max_body_size)", BOUND),
    ("/length", "BodyTooLarge: response body larger than 32 MiB (max_body_size)", 8 * MiB),
    (
        "/gzip",
        "BodyTooLarge: decompressed response body larger than 32 MiB (max_body_size)",
        BOUND,
    ),
    (
        "/gzip-chunked",
        "BodyTooLarge: decompressed response body larger than 32 MiB (max_body_size)",
        BOUND,
    ),
    # Endless headers fail early, but the peak varies with the interpreter's allocator (17 MiB
    # seen with Debian's Python 3.11.2, under 1 MiB with 3.11.7): bounded by the requirement.
    ("/headers", "HeadersTooLarge: more than 100 response headers", BOUND),
    ("/longheader", "HeadersTooLarge: ", BOUND),
]


@pytest.mark.parametrize(("path", "error", "bound"), HOSTILE, ids=[p for p, *_ in HOSTILE])
def test_hostile_response_is_one_failure_in_bounded_memory(
    open_client: Any, path: str, error: str, bound: int
) -> None:
    events = Events()
    client = open_client(events)
    assert client.get("/bytes/10").content == b"\0" * 10  # connected, warmed up
    events.fired.clear()
    with memory() as growth:
        response = client.get(path)
    assert response.status_code == 0 and not response.ok
    assert len(events.fired) == 1
    [text] = events.errors()
    assert text.startswith(error), text
    if path == "/longheader":
        assert "64 KiB" in text
    assert growth.peak < bound, f"peak RSS grew by {growth.peak / MiB:.0f} MiB"
    assert growth.kept < 64 * MiB, f"RSS kept {growth.kept / MiB:.0f} MiB"
    assert client.get("/bytes/10").ok  # the client is still usable


def test_garbage_is_one_error_kind(open_client: Any) -> None:
    events = Events()
    client = open_client(events)
    for _ in range(30):
        assert client.get("/garbage").status_code == 0
    assert len(events.fired) == 30
    assert set(events.errors()) == {"BadResponse: invalid HTTP response from server (not HTTP/1.x)"}


@pytest.mark.parametrize("kind", ["bytes", "chunked", "gzipped"])
def test_per_request_and_per_client_caps(open_client: Any, kind: str) -> None:
    events = Events()
    client = open_client(events)
    url = f"/{kind}/{2 * MiB}"
    assert not client.get(url, max_body_size=MiB).ok
    assert "larger than 1 MiB (max_body_size)" in events.errors()[-1]
    assert client.get(url, max_body_size=4 * MiB).content == b"\0" * (2 * MiB)
    assert client.get(url).ok  # under the default
    client.max_body_size = MiB
    assert not client.get(url).ok
    assert client.get(url, max_body_size=4 * MiB).ok
    assert [e["exception"] is None for e in events.fired] == [False, True, True, False, True]
    small = open_client(events, max_body_size=MiB)
    assert not small.get(url).ok


@pytest.mark.parametrize("user_class", [HttpUser, FastHttpUser])
def test_per_class_cap(hostile: str, user_class: type[HttpUser]) -> None:
    class Small(user_class):  # type: ignore[valid-type, misc]
        host = hostile
        max_body_size = MiB

    class Large(user_class):  # type: ignore[valid-type, misc]
        host = hostile
        max_body_size = 4 * MiB

    env = Environment()
    errors: list[str] = []
    env.events.request.add_listener(lambda exception, **_: errors.append(str(exception)))
    small, large = Small(env), Large(env)
    try:
        assert not small.client.get(f"/bytes/{2 * MiB}").ok
        assert large.client.get(f"/bytes/{2 * MiB}").ok
    finally:
        small.client.close()
        large.client.close()
    assert errors == ["BodyTooLarge: response body larger than 1 MiB (max_body_size)", "None"]


def test_max_body_size_must_be_positive(hostile: str) -> None:
    class Broken(HttpUser):
        host = hostile
        max_body_size = 0

    with pytest.raises(ValueError, match=r"Broken\.max_body_size must be"):
        Broken(Environment())


@pytest.mark.parametrize("kind", ["bytes", "gzipped"])
def test_stream_reads_past_the_cap_in_bounded_memory(open_client: Any, kind: str) -> None:
    events = Events()
    client = open_client(events)
    size = 48 * MiB
    assert client.get("/bytes/10").ok
    with (
        memory() as growth,
        client.get(f"/{kind}/{size}", stream=True, max_body_size=MiB) as response,
    ):
        assert response.ok
        total = sum(len(piece) for piece in response.iter_content(65536))
    assert total == size
    assert growth.peak < 16 * MiB, f"peak RSS grew by {growth.peak / MiB:.0f} MiB"
    assert events.fired[-1]["exception"] is None
    assert client.get("/bytes/10").ok


def test_stream_closed_early_drops_the_connection(open_client: Any) -> None:
    events = Events()
    client = open_client(events)
    before = client.get("/peer").content
    events.fired.clear()
    with memory() as growth:
        response = client.get("/chunked", stream=True)
        assert response.status_code == 200
        first = response.raw.read(1000)
        assert len(first) == 1000
        response.close()  # not drained: the connection is closed
    assert growth.peak < 16 * MiB
    assert [e["exception"] for e in events.fired] == [None]
    assert events.fired[0]["response_length"] == 0  # unknown length, not read by the client
    assert client.get("/peer").content != before


def test_stream_fully_read_reuses_the_connection(open_client: Any) -> None:
    events = Events()
    client = open_client(events)
    before = client.get("/peer").content
    response = client.get(f"/chunked/{3 * MiB}", stream=True)
    lines = list(response.iter_lines())
    assert lines == [b"\0" * (3 * MiB)]
    response = client.get(f"/bytes/{MiB}", stream=True)
    assert events.fired[-1]["response_length"] == MiB  # the announced length
    assert len(response.content) == MiB  # read on demand, under the cap
    assert client.get("/peer").content == before  # one connection all along
    assert all(e["exception"] is None for e in events.fired)


def test_stream_follows_redirects_and_streams_the_last(open_client: Any) -> None:
    events = Events()
    client = open_client(events)
    with client.get(f"/redirect/{2 * MiB}", stream=True, max_body_size=MiB) as response:
        assert [r.status_code for r in response.history] == [302]
        assert response.history[0].content == b"moved"
        assert sum(len(piece) for piece in response.iter_content(None)) == 2 * MiB
    assert [e["exception"] for e in events.fired] == [None]


@pytest.mark.parametrize("stream", [False, True])
def test_iter_lines_and_iter_content(open_client: Any, stream: bool) -> None:
    client = open_client(Events())
    lines = client.get("/lines", stream=stream)
    assert list(lines.iter_lines(chunk_size=2)) == [b"a", b"bb", b"ccc", b"", b"d"]
    lines.close()
    text = client.get("/lines", stream=stream)
    assert "".join(text.iter_content(3, decode_unicode=True)) == "a\nbb\nccc\n\nd"
    text.close()
    whole = client.get("/lines", stream=stream)
    assert whole.text == "a\nbb\nccc\n\nd"  # content read on demand after stream=True
    assert b"".join(whole.iter_content(4)) == whole.content
    if stream:
        read = client.get("/lines", stream=True)
        assert len(b"".join(read.iter_content(4))) == 11
        with pytest.raises(RuntimeError, match="already consumed"):
            read.content  # noqa: B018 - the property is the test


BROKEN = [
    (b"HTTP/1.1 abc\r\n\r\n", "BadResponse: not valid HTTP (invalid status line)"),
    (
        b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort",
        "IncompleteRead: the connection closed before the end of the body",
    ),
    (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        "IncompleteRead: the connection closed before the end of the body",
    ),
    (
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope",
        "BadResponse: cannot decode the gzip body: Error -3 while decompressing data: "
        "incorrect header check",
    ),
]


@pytest.mark.parametrize(("answer", "error"), BROKEN, ids=["status", "short", "chunk", "gzip"])
@pytest.mark.parametrize("kind", [HttpSession, FastHttpSession])
def test_both_clients_name_a_broken_response_alike(
    serve: Any, kind: type[HttpSession], answer: bytes, error: str
) -> None:
    server = serve(lambda conn, head: conn.sendall(answer) and False)
    events = Events()
    client = kind(base_url=server.url, request_event=events.hook)
    try:
        assert client.get("/").status_code == 0
    finally:
        client.close()
    assert events.errors() == [error]
