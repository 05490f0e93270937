"""Where Locust's clients define what a locustfile sees, both of ours do the same: credentials
in the host, control-flow exceptions in a catch_response block, the body of a failed request,
LocustError for misuse, request_meta, events.request.measure, and URLs that are not http(s).
Every test runs both clients against real servers on loopback."""

from __future__ import annotations

import base64
import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mpswarm.event import EventHook
from mpswarm.exceptions import (
    HTTPError,
    InterruptTaskSet,
    InvalidSchema,
    InvalidURL,
    LocustError,
    MissingSchema,
    RescheduleTask,
    RescheduleTaskImmediately,
    ResponseError,
    StopUser,
)
from mpswarm.http._transport import SharedIdle, shared
from mpswarm.http.fast import FastHttpSession
from mpswarm.http.session import HttpSession
from tests.http.conftest import ScriptedServer, reply


class Fired:
    """A request event hook and what it was fired with."""

    def __init__(self) -> None:
        self.hook = EventHook()
        self.calls: list[dict[str, Any]] = []
        self.hook.add_listener(lambda **kw: self.calls.append(kw))


@pytest.fixture()
def fired() -> Fired:
    return Fired()


@pytest.fixture(params=[HttpSession, FastHttpSession], ids=["HttpUser", "FastHttpUser"])
def kind(request: pytest.FixtureRequest) -> type[HttpSession]:
    return request.param


@pytest.fixture()
def open_client(kind: type[HttpSession], fired: Fired) -> Iterator[Callable[[str], HttpSession]]:
    made: list[HttpSession] = []

    def start(base_url: str) -> HttpSession:
        client = kind(base_url=base_url, request_event=fired.hook)
        made.append(client)
        return client

    yield start
    for client in made:
        client.close()


@pytest.fixture()
def ok_server(serve: Callable[..., ScriptedServer]) -> ScriptedServer:
    return serve(reply("200 OK", ["Content-Length: 2"], b"ok"))


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


# -- 6: credentials in the host URL --------------------------------------------------------------


def _auth_checker(seen: list[bytes], user: str, password: str) -> Callable[..., bool]:
    expected = b"Basic " + base64.b64encode(f"{user}:{password}".encode())

    def handler(conn: socket.socket, head: bytes) -> bool:
        seen.append(head)
        lines = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
        }
        allowed = lines.get(b"authorization") == expected
        status = "200 OK" if allowed else "401 Unauthorized"
        return reply(status, ["Content-Length: 0"])(conn, head)

    return handler


def test_host_credentials_are_sent_as_basic_auth_and_not_reported(
    serve: Callable[..., ScriptedServer], open_client: Callable[[str], HttpSession], fired: Fired
) -> None:
    seen: list[bytes] = []
    server = serve(_auth_checker(seen, "ann", "p@ss word"))
    address = server.url.removeprefix("http://")
    client = open_client(f"http://ann:p%40ss%20word@{address}")
    response = client.get("/private")
    assert response.status_code == 200
    [event] = fired.calls
    assert event["exception"] is None and event["name"] == "/private"
    assert event["url"] == f"http://{address}/private"  # no credentials in what is reported
    assert f"Host: {address}".encode() in seen[0]
    # An explicit auth= wins over the host's, as in Locust.
    assert client.get("/private", auth=("bob", "x")).status_code == 401


def test_credentials_in_a_full_request_url_are_sent_and_not_reported(
    serve: Callable[..., ScriptedServer], open_client: Callable[[str], HttpSession], fired: Fired
) -> None:
    seen: list[bytes] = []
    server = serve(_auth_checker(seen, "ann", "s3cret"))
    address = server.url.removeprefix("http://")
    client = open_client("")  # no host: the URL says it all, as with requests
    assert client.get(f"http://ann:s3cret@{address}/private").status_code == 200
    [event] = fired.calls
    assert event["url"] == f"http://{address}/private" and "s3cret" not in event["name"]
    assert f"Host: {address}".encode() in seen[0]


def test_host_with_a_user_name_but_no_password_sends_no_auth(
    serve: Callable[..., ScriptedServer], open_client: Callable[[str], HttpSession]
) -> None:
    seen: list[bytes] = []
    server = serve(_auth_checker(seen, "ann", ""))
    client = open_client(server.url.replace("http://", "http://ann@"))
    assert client.get("/private").status_code == 401
    assert b"authorization" not in seen[0].lower()


# -- 7: exceptions in a catch_response block ----------------------------------------------------


@pytest.mark.parametrize(
    "steer", [InterruptTaskSet, RescheduleTask, RescheduleTaskImmediately, StopUser, KeyError]
)
def test_an_exception_out_of_an_undecided_block_records_nothing(
    ok_server: ScriptedServer,
    open_client: Callable[[str], HttpSession],
    fired: Fired,
    steer: type[Exception],
) -> None:
    client = open_client(ok_server.url)
    with pytest.raises(steer), client.get("/", catch_response=True):
        raise steer()
    assert fired.calls == []
    # A block that decided first is recorded as decided, and the exception still goes on.
    with pytest.raises(steer), client.get("/", catch_response=True) as response:
        response.failure("checked, then steered")
        raise steer()
    [event] = fired.calls
    assert str(event["exception"]) == "checked, then steered"


def test_a_response_error_raised_in_a_catch_block_fails_the_request(
    ok_server: ScriptedServer, open_client: Callable[[str], HttpSession], fired: Fired
) -> None:
    """Locust's rule: a ResponseError raised in the block is the request's failure, and it
    goes no further."""
    client = open_client(ok_server.url)
    with client.get("/", catch_response=True):
        raise ResponseError("the body said no")
    [event] = fired.calls
    assert isinstance(event["exception"], ResponseError)
    assert str(event["exception"]) == "the body said no"


# -- 8: the body of a request that got no response ----------------------------------------------


def test_connection_error_has_no_content(kind: type[HttpSession], fired: Fired) -> None:
    client = kind(base_url=f"http://127.0.0.1:{_closed_port()}", request_event=fired.hook)
    try:
        response = client.get("/")
        assert response.status_code == 0 and response.content is None
        # Locust: requests' Response gives "" for text, FastHttpUser's gives None.
        assert response.text == ("" if kind is HttpSession else None)
        assert fired.calls[0]["response_length"] == 0
        with client.get("/", catch_response=True) as caught:
            assert caught.content is None
            caught.success()
        assert fired.calls[1]["exception"] is None
    finally:
        client.close()


# -- 9: LocustError for misuse, and request_meta ------------------------------------------------


def test_success_or_failure_outside_a_catch_block_raises_locust_error(
    ok_server: ScriptedServer, open_client: Callable[[str], HttpSession], fired: Fired
) -> None:
    client = open_client(ok_server.url)
    plain = client.get("/")
    with pytest.raises(LocustError, match="catch_response=True"):
        plain.success()
    with pytest.raises(LocustError, match="catch_response=True"):
        plain.failure("no")
    caught = client.get("/", catch_response=True)
    with pytest.raises(LocustError, match="with-block"):
        caught.failure("before the block")
    with caught:
        pass
    assert [event["exception"] for event in fired.calls] == [None, None]


def test_request_meta_is_what_the_event_got(
    serve: Callable[..., ScriptedServer], open_client: Callable[[str], HttpSession], fired: Fired
) -> None:
    server = serve(reply("404 Not Found", ["Content-Length: 4"], b"gone"))
    client = open_client(server.url)
    response = client.get("/items/7", name="/items/[id]", context={"k": "v"})
    meta = response.request_meta
    assert meta is not None
    [event] = fired.calls
    assert set(meta) == set(event)
    for key in ("request_type", "name", "response_length", "context", "start_time", "url"):
        assert meta[key] == event[key], key
    assert meta["response"] is response and meta["response_time"] == event["response_time"]
    assert (
        str(meta["exception"])
        == str(event["exception"])
        == ("404 Client Error: Not Found for url: /items/[id]")
    )


def test_request_meta_changed_in_a_catch_block_is_recorded(
    ok_server: ScriptedServer, open_client: Callable[[str], HttpSession], fired: Fired
) -> None:
    client = open_client(ok_server.url)
    with client.get("/", catch_response=True) as response:
        assert response.request_meta["exception"] is None
        response.request_meta["name"] = "renamed"
        response.failure("bad body")
    [event] = fired.calls
    assert event["name"] == "renamed" and str(event["exception"]) == "bad body"
    assert response.request_meta["exception"] is event["exception"]
    with client.get("/", catch_response=True) as later:
        pass
    assert later.request_meta["exception"] is None and later.request_meta["name"] == "/"


# -- 10: events.request.measure, and URLs that are not http(s) ----------------------------------


def test_measure_records_the_exception_and_does_not_raise(fired: Fired) -> None:
    with fired.hook.measure("custom", "op", response_length=3) as meta:
        meta["context"] = {"step": 1}
        raise ValueError("backend said no")
    [event] = fired.calls
    assert isinstance(event["exception"], ValueError)
    assert event["request_type"] == "custom" and event["name"] == "op"
    assert event["response_length"] == 3 and event["context"] == {"step": 1}
    assert event["response_time"] >= 0


def test_url_without_a_scheme_and_no_host_raises(
    open_client: Callable[[str], HttpSession], fired: Fired
) -> None:
    client = open_client("")
    with pytest.raises(MissingSchema, match=r"No scheme supplied.*give the user a host"):
        client.get("/items")
    assert fired.calls == []


def test_unsupported_scheme_raises(
    ok_server: ScriptedServer, open_client: Callable[[str], HttpSession], fired: Fired
) -> None:
    address = ok_server.url.removeprefix("http://")
    with pytest.raises(InvalidSchema, match="No connection adapters"):
        open_client("").get(f"ftp://{address}/file")
    with pytest.raises(InvalidURL):  # Locust's rule appends it to the host: no valid URL
        open_client(ok_server.url).get(f"ftp://{address}/file")
    assert fired.calls == []
    assert open_client("").get(f"{ok_server.url}/").status_code == 200  # a full URL is fine


def test_with_needs_catch_response_unless_streamed(
    open_client: Callable[[str], HttpSession], ok_server: ScriptedServer
) -> None:
    client = open_client(ok_server.url)
    with pytest.raises(LocustError, match="catch_response=True"), client.get("/"):
        pass  # a read response as a context manager: catch_response was forgotten
    with client.get("/", stream=True) as streamed:  # a stream is closed at the end
        assert streamed.content == b"ok"


# -- Locust's library surface of the clients ------------------------------------------------------


def test_sessions_given_one_pool_object_share_their_connections(
    kind: type[HttpSession], ok_server: ScriptedServer, fired: Fired
) -> None:
    option = "pool_manager" if kind is HttpSession else "client_pool"
    shared_pool = object()  # Locust's is a PoolManager / HTTPClientPool: any object will do
    sharing = [kind(ok_server.url, fired.hook, **{option: shared_pool}) for _ in range(2)]
    for client in (*sharing, *reversed(sharing)):
        assert client.get("/").status_code == 200
    assert ok_server.connections == 1
    alone = [kind(ok_server.url, fired.hook) for _ in range(2)]
    for client in alone:
        assert client.get("/").status_code == 200
    assert ok_server.connections == 3  # one more each
    for client in (*sharing, *alone):
        client.close()
    assert ok_server.connections == 3  # closing a session leaves the shared connections open
    shared(shared_pool, SharedIdle).close()


def test_ssl_context_factory_makes_each_tls_context(
    serve: Callable[..., ScriptedServer], tls_context: Any, fired: Fired
) -> None:
    import ssl

    server = serve(reply("200 OK", ["Content-Length: 2"], b"ok"), tls=tls_context)
    verifying = FastHttpSession(server.url, fired.hook)
    assert verifying.get("/").status_code == 0  # self-signed: refused by default

    def trusting() -> ssl.SSLContext:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    def broken() -> ssl.SSLContext:
        context = ssl.create_default_context()
        context.verify_mode = ssl.CERT_NONE  # refused by ssl while check_hostname is on
        return context

    trusted = FastHttpSession(server.url, fired.hook, ssl_context_factory=trusting)
    assert trusted.get("/").status_code == 200
    calls = len(fired.calls)
    with pytest.raises(ValueError, match="check_hostname"):  # the locustfile's bug: raised
        FastHttpSession(server.url, fired.hook, ssl_context_factory=broken).get("/")
    assert len(fired.calls) == calls
    verifying.close()
    trusted.close()


def test_fast_session_iter_lines_and_response_stream(
    serve: Callable[..., ScriptedServer], fired: Fired
) -> None:
    body = b"one\ntwo\nthree"
    server = serve(reply("200 OK", [f"Content-Length: {len(body)}"], body))
    client = FastHttpSession(server.url, fired.hook)
    assert list(client.iter_lines("/lines")) == ["one", "two", "three"]
    with client.get("/raw", stream=True) as response:
        assert response.stream.read() == body
    assert [call["name"] for call in fired.calls] == ["/lines", "/raw"]
    missing = serve(reply("404 Not Found", ["Content-Length: 0"]))
    refused = FastHttpSession(missing.url, fired.hook)
    with pytest.raises(HTTPError):
        list(refused.iter_lines("/"))
    client.close()
    refused.close()


def test_a_failed_fast_request_keeps_what_the_transport_raised(fired: Fired) -> None:
    client = FastHttpSession(f"http://127.0.0.1:{_closed_port()}", fired.hook)
    response = client.get("/")
    assert isinstance(response.error.original, ConnectionRefusedError)
    assert str(response.error) == "ConnectionRefusedError: [Errno 111] Connection refused"
    client.close()


def test_unparsable_url_and_a_host_of_another_scheme_raise(fired: Fired) -> None:
    clients = [HttpSession("http://\x94", fired.hook)]
    with pytest.raises(InvalidURL):
        clients[0].get("/")
    for kind in (HttpSession, FastHttpSession):
        clients.append(kind("telnet://127.0.0.1", fired.hook))
        with pytest.raises(InvalidSchema):  # urljoin drops a telnet:// host: still refused
            clients[-1].get("/")
    assert fired.calls == []
    for client in clients:
        client.close()


def test_errors_are_requests_types(kind: type[HttpSession]) -> None:
    import requests.exceptions as requests_exceptions

    client = kind(f"http://127.0.0.1:{_closed_port()}", EventHook())
    with pytest.raises(requests_exceptions.RequestException):
        client.get("/").raise_for_status()
    hostless = kind("", EventHook())
    with pytest.raises(requests_exceptions.MissingSchema):
        hostless.get("/x")
    assert issubclass(InvalidURL, requests_exceptions.InvalidURL)
    client.close()
    hostless.close()
