"""HttpSession against the real demo server on loopback (no mocked HTTP)."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import pytest

from mpswarm.event import EventHook
from mpswarm.exceptions import HTTPError
from mpswarm.http.session import HttpSession
from tests.http.conftest import reply


class Events:
    def __init__(self) -> None:
        self.hook = EventHook()
        self.fired: list[dict[str, Any]] = []
        self.hook.add_listener(lambda **kw: self.fired.append(kw))


@pytest.fixture()
def events() -> Events:
    return Events()


@pytest.fixture()
def session(demo, events: Events) -> HttpSession:
    client = HttpSession(base_url=demo.url, request_event=events.hook)
    yield client
    client.close()


def test_request_event_has_locusts_arguments(session: HttpSession, events: Events) -> None:
    response = session.get("/items/7", name="/items/[id]", context={"k": "v"})
    assert response.status_code == 200 and response.ok
    assert response.json() == {"id": 7, "name": "item 7", "price": pytest.approx(26.9)}
    [event] = events.fired
    assert set(event) == {
        "request_type",
        "name",
        "response_time",
        "response_length",
        "response",
        "context",
        "exception",
        "start_time",
        "url",
    }
    assert event["request_type"] == "GET" and event["name"] == "/items/[id]"
    assert event["exception"] is None and event["response"] is response
    assert event["response_length"] == len(response.content) > 0
    assert 0 < event["response_time"] < 5000
    assert event["context"] == {"k": "v"}
    assert event["url"].endswith("/items/7")


def test_default_name_is_path_and_query(session: HttpSession, events: Events) -> None:
    session.get("/echo", params={"a": 1, "b": ["x", "y"]})
    assert events.fired[0]["name"] == "/echo?a=1&b=x&b=y"


def test_cookies_persist_per_session(demo, session: HttpSession, events: Events) -> None:
    assert session.get("/cart").status_code == 401
    login = session.post("/login", data={"username": "ann"})
    assert login.ok and "session" in login.cookies
    assert session.get("/cart").status_code == 200
    other = HttpSession(base_url=demo.url, request_event=events.hook)
    assert other.get("/cart").status_code == 401  # cookies are per user
    other.close()


def test_bodies_headers_auth_and_explicit_cookies(session: HttpSession) -> None:
    echo = session.post("/echo", json={"a": [1, 2]}, headers={"X-Test": "yes"}).json()
    assert echo["method"] == "POST" and json.loads(echo["body"]) == {"a": [1, 2]}
    assert echo["headers"]["Content-Type"] == "application/json"
    assert echo["headers"]["X-Test"] == "yes"
    form = session.put("/echo", data={"x": "1 2"}).json()
    assert form["body"] == "x=1+2"
    assert form["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    raw = session.patch("/echo", data=b"\x00raw").json()
    assert raw["body"] == "\x00raw"
    auth = session.get("/echo", auth=("user", "pa:ss")).json()
    assert auth["headers"]["Authorization"] == "Basic dXNlcjpwYTpzcw=="
    cookie = session.get("/echo", cookies={"a": "b"}).json()
    assert cookie["headers"]["Cookie"] == "a=b"
    files = session.post("/echo", files={"f": ("up.txt", b"hello")}, data={"k": "v"}).json()
    assert files["headers"]["Content-Type"].startswith("multipart/form-data")
    assert 'filename="up.txt"' in files["body"] and "hello" in files["body"]


def test_head_delete_options(session: HttpSession) -> None:
    assert session.head("/").status_code == 200
    assert session.head("/").content == b""
    assert session.options("/echo").json()["method"] == "OPTIONS"
    created = session.post("/api/items", json={"name": "w"}).json()
    assert session.delete(f"/api/items/{created['id']}").status_code == 204


def test_redirects_are_followed_with_history(session: HttpSession, events: Events) -> None:
    response = session.get("/redirect/3")
    assert response.status_code == 200 and response.url.endswith("/")
    assert [r.status_code for r in response.history] == [302, 302, 302]
    assert len(events.fired) == 1  # one logical request, one event
    direct = session.get("/redirect/2", allow_redirects=False)
    assert direct.status_code == 302 and direct.headers["Location"] == "/redirect/1"


def test_status_400_and_above_is_a_failure(session: HttpSession, events: Events) -> None:
    response = session.get("/status/404")
    assert response.status_code == 404 and not response.ok
    error = events.fired[0]["exception"]
    assert str(error) == "404 Client Error: Not Found for url: /status/404"
    with pytest.raises(HTTPError, match="404 Client Error"):
        response.raise_for_status()


def test_catch_response(session: HttpSession, events: Events) -> None:
    with session.get("/status/500", catch_response=True) as response:
        response.success()
    assert events.fired[-1]["exception"] is None
    with session.get("/", catch_response=True) as response:
        response.failure("wrong page")
    assert str(events.fired[-1]["exception"]) == "wrong page"
    with session.get("/status/503", catch_response=True):
        pass
    assert "503 Server Error" in str(events.fired[-1]["exception"])
    with pytest.raises(ZeroDivisionError), session.get("/", catch_response=True):
        1 / 0  # noqa: B018
    assert len(events.fired) == 3  # Locust's rule: the exception goes on, no request recorded


def test_connection_refused_is_a_failed_response(events: Events) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = HttpSession(base_url=f"http://127.0.0.1:{port}", request_event=events.hook)
    response = client.get("/")
    assert response.status_code == 0 and not response.ok
    text = str(events.fired[0]["exception"])
    assert text == "ConnectionRefusedError: [Errno 111] Connection refused"  # as FastHttpUser
    with pytest.raises(Exception, match="Connection refused"):
        response.raise_for_status()


def test_read_timeout_is_a_failure(session: HttpSession, events: Events) -> None:
    response = session.get("/slow?ms=2000", timeout=0.2)
    assert response.status_code == 0
    assert "timed out" in str(events.fired[0]["exception"]).lower()


def test_absolute_urls_and_elapsed(session: HttpSession, demo) -> None:
    response = session.get(f"{demo.url}/bytes/10")
    assert response.content == b"x" * 10
    assert response.elapsed.total_seconds() > 0
    assert response.request is not None and response.request.method == "GET"


def test_tls_verifies_by_default_and_insecure_skips(serve, events: Events, tls_context) -> None:
    server = serve(reply("200 OK", ["Content-Length: 3"], b"tls"), tls=tls_context)
    client = HttpSession(base_url=server.url, request_event=events.hook)
    try:
        refused = client.get("/")
        assert refused.status_code == 0 and "CERTIFICATE_VERIFY_FAILED" in str(refused.error)
        client.insecure = True  # (verify = False loses to REQUESTS_CA_BUNDLE, as in requests)
        first = client.get("/")
        assert first.content == b"tls"
        second = client.get("/")
        assert second.content == b"tls"
        assert server.connections == 2  # the refused handshake, then one kept-alive connection
        # The breakdown: a new connection's connect and handshake go with its first response.
        opened = first.timings
        assert opened is not None and opened["connect"] is not None and opened["tls"] is not None
        assert opened["tls"] > 0 and 0 < opened["ttfb"] <= first.elapsed.total_seconds() * 1000
        assert second.timings is not None and second.timings["connect"] is None
        assert second.timings["tls"] is None and second.timings["ttfb"] > 0
        assert refused.timings is None
    finally:
        client.close()


def test_connection_closed_by_server_while_idle_is_replaced(serve, events: Events) -> None:
    """The server closes after each answer without saying so: the next request must not fail."""
    server = serve(reply("200 OK", ["Content-Length: 2"], b"ok", keep=False))
    client = HttpSession(base_url=server.url, request_event=events.hook)
    try:
        for _ in range(3):
            assert client.get("/").content == b"ok"
            time.sleep(0.05)  # the close has arrived
        assert all(event["exception"] is None for event in events.fired)
        assert server.connections == 3
    finally:
        client.close()
