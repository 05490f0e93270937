"""Proxies, TLS verification and client certificates, with ``requests.Session`` as the
reference: every case runs through requests itself and through both of our clients (HttpUser's
``HttpSession`` and FastHttpUser's ``FastHttpSession``), against a forward proxy and origins on
loopback whose CA the test makes (``_pki``, ``_proxy``).

What is compared: what the caller saw (status and body; for a failure, the requests exception
class) and which server saw which request. Locust's error rule maps requests to ours: where
requests *raises* a ``RequestException`` other than MissingSchema / InvalidSchema / InvalidURL,
Locust's client returns a response with ``status_code`` 0 and that exception as ``error``; any
other exception (those three, ``OSError`` for a missing CA bundle, ``TypeError``) propagates.

Case ids starting ``quirk-`` pin requests behaviour that surprises (an environment proxy beats
``session.proxies``; ``REQUESTS_CA_BUNDLE`` beats ``session.verify = False``...): a locustfile
run by Locust gets it, so ours should too, but each is a decision of its own.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import re
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from requests import exceptions as rex
from requests.utils import should_bypass_proxies

from mpswarm.event import EventHook
from mpswarm.http.fast import FastHttpSession
from mpswarm.http.session import HttpSession
from tests.http._pki import CLIENT_NAME, Pki, make_pki
from tests.http._proxy import ForwardProxy, Origin, Seen, ThreadedServer, basic

pytestmark = pytest.mark.filterwarnings(
    # requests (urllib3) warns on every verify=False request; what is tested is the outcome.
    "ignore::urllib3.exceptions.InsecureRequestWarning"
)

KINDS = ["requests", "HttpUser", "FastHttpUser"]
USER, PASSWORD = "ann", "p@ss word"  # needs percent-encoding in a proxy URL
TIMEOUT_S = 10  # every request: a hang fails the case instead of the whole run

#: Every variable that steers requests' proxies or CA bundle (cleared around each test).
ENV_VARS = [
    *(v for name in ("http", "https", "all", "no") for v in (f"{name}_proxy", f"{name}_PROXY")),
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "REQUEST_METHOD",  # a CGI request: Python's urllib ignores HTTP_PROXY then (httpoxy)
]


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pki() -> Iterator[Pki]:
    with tempfile.TemporaryDirectory(prefix="mpswarm-pki-") as folder:
        yield make_pki(Path(folder))


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    # requests reads ~/.netrc for credentials when trust_env is on: an empty one here.
    monkeypatch.setenv("NETRC", os.devnull)


def _socket_fds() -> set[str]:
    found = set()
    for entry in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{entry}").startswith("socket:"):
                found.add(entry)
        except OSError:
            pass
    return found


@pytest.fixture(autouse=True)
def no_leaks() -> Iterator[None]:
    """Every socket and server thread a test made is gone when it ends (a teardown error)."""
    if not os.path.isdir("/proc/self/fd"):
        yield
        return
    before = _socket_fds()
    yield
    deadline = time.monotonic() + 2.0
    left = _socket_fds() - before
    while left and time.monotonic() < deadline:
        # A socket of an object already dropped (its ResourceWarning is an error anyway) is
        # not counted: collect first, and only when something is open (50 ms a call by now).
        gc.collect()
        time.sleep(0.01)
        left = _socket_fds() - before
    servers = [t.name for t in threading.enumerate() if t.name.startswith(("Origin-", "Forward"))]
    assert not servers, f"server threads left: {servers}"
    assert not left, f"{len(left)} sockets left open"


class Servers:
    """The servers of one test, started on first use (``servers["tls"]``) and all closed at its
    end; ``servers["pki"]`` is the PKI. A mapping for ``str.format_map``: ``{tls.url}``."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.started: dict[str, ThreadedServer] = {}

    def _make(self, name: str) -> ThreadedServer:
        pki = self.pki
        if name == "plain":
            return Origin(body=b"plain")
        if name == "plain2":
            return Origin("127.0.0.2", body=b"plain2")
        if name == "tls":
            return Origin(tls=pki.server_context(), body=b"tls")
        if name == "tls2":  # the same certificate, on an address it does not name
            return Origin("127.0.0.2", tls=pki.server_context(), body=b"tls2")
        if name == "mtls":
            return Origin(tls=pki.server_context(require_client_cert=True), body=b"mtls")
        if name in ("proxy", "proxy2"):
            return ForwardProxy()
        if name == "proxy6":
            try:
                return ForwardProxy("::1")
            except OSError as exc:
                pytest.skip(f"no IPv6 loopback: {exc}")
        if name == "auth_proxy":
            return ForwardProxy(credentials=(USER, PASSWORD))
        if name == "tls_proxy":
            return ForwardProxy(tls=pki.server_context())
        raise KeyError(name)

    def __getitem__(self, name: str) -> Any:
        if name == "pki":
            return self.pki
        if name not in self.started:
            self.started[name] = self._make(name)
        return self.started[name]

    def routes(self) -> dict[str, list[str]]:
        """What each server that saw anything saw, as ``"GET /x"`` lines in order."""
        return {
            name: [_line(seen) for seen in server.seen]
            for name, server in self.started.items()
            if server.seen
        }

    def close(self) -> None:
        problems = []
        for server in self.started.values():
            try:
                server.close()
            except RuntimeError as exc:
                problems.append(str(exc))
        assert not problems, problems


def _line(seen: Seen) -> str:
    cert = f" cert={seen.client_subject}" if seen.client_subject else ""
    return f"{seen.method} {seen.target}{cert}"


@pytest.fixture()
def servers(pki: Pki) -> Iterator[Servers]:
    made = Servers(pki)
    yield made
    made.close()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return request.param


@dataclass
class Outcome:
    """What a caller saw: a response (``status``, ``body``), a failure (``status`` 0 and
    ``error``) or an exception that propagated (``raised``)."""

    status: int | None = None
    body: bytes | None = None
    error: BaseException | None = None
    raised: BaseException | None = None


class Caller:
    """One client of ``kind``: requests' Session, or one of ours with its request events."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.events: list[dict[str, Any]] = []
        self.client: Any
        if kind == "requests":
            self.client = requests.Session()
        else:
            hook = EventHook()
            hook.add_listener(lambda **event: self.events.append(event))
            made = HttpSession if kind == "HttpUser" else FastHttpSession
            self.client = made(base_url="", request_event=hook)

    def call(self, url: str, method: str = "GET", **kwargs: Any) -> Outcome:
        kwargs.setdefault("timeout", TIMEOUT_S)
        fired = len(self.events)
        if self.kind == "requests":
            try:
                response = self.client.request(method, url, **kwargs)
            except (rex.MissingSchema, rex.InvalidSchema, rex.InvalidURL) as exc:
                return Outcome(raised=exc)  # Locust re-raises these three
            except rex.RequestException as exc:
                return Outcome(status=0, error=exc)  # Locust: status 0, error set
            except Exception as exc:
                return Outcome(raised=exc)
            return Outcome(response.status_code, response.content)
        try:
            response = self.client.request(method, url, **kwargs)
        except Exception as exc:
            assert len(self.events) == fired, "a request that raised was recorded"
            return Outcome(raised=exc)
        assert len(self.events) == fired + 1, "one request event per request"
        if response.status_code == 0:
            assert self.events[-1]["exception"] is response.error
            return Outcome(status=0, error=response.error)
        return Outcome(response.status_code, response.content)

    def close(self) -> None:
        self.client.close()


@pytest.fixture()
def open_caller(kind: str) -> Iterator[Callable[..., Caller]]:
    made: list[Caller] = []

    def start(**session: Any) -> Caller:
        caller = Caller(kind)
        for name, value in session.items():
            setattr(caller.client, name, value)
        made.append(caller)
        return caller

    yield start
    for caller in made:
        caller.close()


# -- expectations ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """What requests does, as the caller sees it under Locust's error rule.

    Attributes:
        status / body: the response (``status`` 0: a failure, ``error`` its requests class).
        raised: the class of the exception requests raises (and Locust lets through).
        match: a regular expression the raised exception's text must match (all clients).
        any_class: ours may raise another class than requests', if its text matches.
    """

    status: int = 200
    body: bytes | None = None
    error: type[BaseException] | None = None
    raised: type[BaseException] | None = None
    match: str | None = None
    any_class: bool = False


def ok(body: bytes, status: int = 200) -> Expect:
    return Expect(status=status, body=body)


def fails(error: type[BaseException]) -> Expect:
    return Expect(status=0, error=error)


def raises(raised: type[BaseException], match: str, any_class: bool = False) -> Expect:
    return Expect(status=-1, raised=raised, match=match, any_class=any_class)


def _requests_class(exc: BaseException) -> str:
    """The most derived requests (or built-in) class of ``exc``, and what else it says."""
    for klass in type(exc).__mro__:
        if klass.__module__ in ("requests.exceptions", "builtins"):
            text = re.sub(r"0x[0-9a-f]+", "0x?", str(exc))[:160]
            return f"{klass.__name__} ({type(exc).__name__}: {text})"
    return type(exc).__name__


def seen_as(outcome: Outcome, expect: Expect, kind: str) -> str:
    """``outcome`` in the words of ``expected_as(expect)`` where it meets the expectation, in
    its own (with its error text) where it does not: a failed assertion shows the difference."""
    if outcome.raised is not None:
        exc = outcome.raised
        wanted = Exception if expect.any_class and kind != "requests" else expect.raised
        if wanted is not None and isinstance(exc, wanted):
            if expect.match is None or re.search(expect.match, str(exc)):
                return expected_as(expect)
            return f"raises {type(exc).__name__}, text {str(exc)!r}"
        return f"raises {_requests_class(exc)}"
    if outcome.status == 0:
        assert outcome.error is not None
        if expect.error is not None and isinstance(outcome.error, expect.error):
            return expected_as(expect)
        return f"fails with {_requests_class(outcome.error)}"
    return f"{outcome.status} {outcome.body!r}"


def expected_as(expect: Expect) -> str:
    if expect.raised is not None:
        how = "any exception" if expect.any_class else expect.raised.__name__
        return f"raises {how} matching {expect.match!r}"
    if expect.status == 0:
        assert expect.error is not None
        return f"fails with {expect.error.__name__}"
    return f"{expect.status} {expect.body!r}"


def differ(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    """Fail with one line per item that is not what requests does, and no traceback (pytest's
    own diff of long lines costs about 100 ms a failure: 20 s for today's failures)."""
    lines = [
        f"{key}: got {actual.get(key)!r}; requests: {value!r}"
        for key, value in expected.items()
        if actual.get(key) != value
    ]
    if lines:
        pytest.fail("\n".join(lines), pytrace=False)


@dataclass(frozen=True)
class Case:
    """One request and what requests makes of it. Strings are templates filled from the
    test's servers and PKI: ``{plain.url}``, ``{tls.address}``, ``{pki.ca}``.

    Attributes:
        route: what each server sees, ``{"proxy": ["GET {plain.url}/x"], ...}``; a server that
            sees nothing is left out.
        session: attributes set on the client (``proxies``, ``verify``, ``trust_env``, ``cert``).
        env: environment variables set before the client is made.
        needs: a Pki attribute that must not be None (else the case is skipped).
    """

    id: str
    url: str
    expect: Expect
    route: dict[str, list[str]] = field(default_factory=dict)
    kwargs: dict[str, Any] = field(default_factory=dict)
    session: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    needs: str | None = None


def fill(value: Any, servers: Servers) -> Any:
    """``value`` with every string in it formatted from ``servers``."""
    if isinstance(value, str):
        return value.format_map(servers)
    if isinstance(value, dict):
        return {fill(k, servers): fill(v, servers) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(fill(item, servers) for item in value)
    return value


def run_case(
    case: Case,
    kind: str,
    servers: Servers,
    open_caller: Callable[..., Caller],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Run ``case`` with a client of ``kind``; assert what it saw and where the request went."""
    if case.needs and getattr(servers.pki, case.needs) is None:
        pytest.skip(f"no {case.needs} here (openssl rehash / c_rehash missing)")
    expected_route = fill(case.route, servers)  # starts the servers the case names
    url = fill(case.url, servers)
    for name, value in fill(case.env, servers).items():
        monkeypatch.setenv(name, value)
    caller = open_caller(**fill(case.session, servers))
    outcome = caller.call(url, **fill(case.kwargs, servers))
    actual = {"outcome": seen_as(outcome, case.expect, kind), "route": servers.routes()}
    expected = {"outcome": expected_as(case.expect), "route": expected_route}
    differ(actual, expected)


# -- 1, 4: proxies= and session.proxies for http:// URLs ------------------------------------------

VIA_PROXY = {"proxy": ["GET {plain.url}/x?y=1"], "plain": ["GET /x?y=1"]}
DIRECT = {"plain": ["GET /x?y=1"]}

HTTP_PROXY_CASES = [
    Case("absolute-form", "{plain.url}/x?y=1", ok(b"plain"), VIA_PROXY,
         kwargs={"proxies": {"http": "{proxy.url}"}}),
    Case("proxy-url-without-scheme", "{plain.url}/x?y=1", ok(b"plain"), VIA_PROXY,
         kwargs={"proxies": {"http": "{proxy.address}"}}),
    Case("proxy-on-ipv6-loopback", "{plain.url}/x?y=1", ok(b"plain"),
         {"proxy6": ["GET {plain.url}/x?y=1"], "plain": ["GET /x?y=1"]},
         kwargs={"proxies": {"http": "{proxy6.url}"}}),
    Case("https-key-leaves-http-direct", "{plain.url}/x?y=1", ok(b"plain"), DIRECT,
         kwargs={"proxies": {"https": "{proxy.url}"}}),
    Case("all-key", "{plain.url}/x?y=1", ok(b"plain"), VIA_PROXY,
         kwargs={"proxies": {"all": "{proxy.url}"}}),
    Case("scheme-host-key-first", "{plain.url}/x?y=1", ok(b"plain"), VIA_PROXY,
         kwargs={"proxies": {"http://127.0.0.1": "{proxy.url}", "http": "{proxy2.url}"}}),
    Case("scheme-host-key-other-host", "{plain2.url}/x", ok(b"plain2"),
         {"proxy2": ["GET {plain2.url}/x"], "plain2": ["GET /x"]},
         kwargs={"proxies": {"http://127.0.0.1": "{proxy.url}", "http": "{proxy2.url}"}}),
    Case("scheme-key-beats-all-host-key", "{plain.url}/x?y=1", ok(b"plain"),
         {"proxy2": ["GET {plain.url}/x?y=1"], "plain": ["GET /x?y=1"]},
         kwargs={"proxies": {"all://127.0.0.1": "{proxy.url}", "http": "{proxy2.url}"}}),
    Case("empty-proxy-url-is-direct", "{plain.url}/x?y=1", ok(b"plain"), DIRECT,
         kwargs={"proxies": {"http": ""}}),
    # 4: on the session, and per request over it (requests' merge_setting).
    Case("session-proxies", "{plain.url}/x?y=1", ok(b"plain"), VIA_PROXY,
         session={"proxies": {"http": "{proxy.url}"}}),
    Case("request-proxies-over-session", "{plain.url}/x?y=1", ok(b"plain"),
         {"proxy2": ["GET {plain.url}/x?y=1"], "plain": ["GET /x?y=1"]},
         session={"proxies": {"http": "{proxy.url}"}},
         kwargs={"proxies": {"http": "{proxy2.url}"}}),
    Case("request-none-removes-session-proxy", "{plain.url}/x?y=1", ok(b"plain"), DIRECT,
         session={"proxies": {"http": "{proxy.url}"}}, kwargs={"proxies": {"http": None}}),
    Case("request-other-key-keeps-session-proxy", "{plain.url}/x?y=1", ok(b"plain"), VIA_PROXY,
         session={"proxies": {"http": "{proxy.url}"}},
         kwargs={"proxies": {"https": "{proxy2.url}"}}),
]  # fmt: skip


@pytest.mark.parametrize("case", HTTP_PROXY_CASES, ids=lambda case: case.id)
def test_http_url_through_a_proxy(
    case: Case, kind: str, servers: Servers, open_caller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_case(case, kind, servers, open_caller, monkeypatch)


# -- 2, 6: https:// through a CONNECT tunnel, and verify= -----------------------------------------

TUNNEL = {"proxy": ["CONNECT {tls.address}"], "tls": ["GET /s"]}
CA = {"verify": "{pki.ca}"}

HTTPS_PROXY_CASES = [
    Case("connect-tunnel", "{tls.url}/s", ok(b"tls"), TUNNEL,
         kwargs={"proxies": {"https": "{proxy.url}"}, **CA}),
    Case("connect-to-a-host-name", "https://localhost:{tls.port}/s", ok(b"tls"),
         {"proxy": ["CONNECT localhost:{tls.port}"], "tls": ["GET /s"]},
         kwargs={"proxies": {"https": "{proxy.url}"}, **CA}),
    Case("default-bundle-through-tunnel-fails", "{tls.url}/s", fails(rex.SSLError),
         {"proxy": ["CONNECT {tls.address}"]}, kwargs={"proxies": {"https": "{proxy.url}"}}),
    Case("verify-false-through-tunnel", "{tls.url}/s", ok(b"tls"), TUNNEL,
         kwargs={"proxies": {"https": "{proxy.url}"}, "verify": False}),
    Case("client-cert-through-tunnel", "{mtls.url}/s", ok(b"mtls"),
         {"proxy": ["CONNECT {mtls.address}"], "mtls": [f"GET /s cert={CLIENT_NAME}"]},
         kwargs={"proxies": {"https": "{proxy.url}"}, "cert": "{pki.client_combined}", **CA}),
    Case("http-key-leaves-https-direct", "{tls.url}/s", ok(b"tls"), {"tls": ["GET /s"]},
         kwargs={"proxies": {"http": "{proxy.url}"}, **CA}),
    Case("session-proxies-https", "{tls.url}/s", ok(b"tls"), TUNNEL,
         session={"proxies": {"https": "{proxy.url}"}}, kwargs=CA),
]  # fmt: skip


@pytest.mark.parametrize("case", HTTPS_PROXY_CASES, ids=lambda case: case.id)
def test_https_url_through_a_connect_tunnel(
    case: Case, kind: str, servers: Servers, open_caller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_case(case, kind, servers, open_caller, monkeypatch)


# requests' own words: "Could not find a suitable TLS CA certificate bundle, invalid path: ..."
NO_CA = "invalid path: /no/such/file"

VERIFY_CASES = [
    Case("ca-file", "{tls.url}/s", ok(b"tls"), {"tls": ["GET /s"]}, kwargs=CA),
    Case("ca-directory", "{tls.url}/s", ok(b"tls"), {"tls": ["GET /s"]},
         kwargs={"verify": "{pki.ca_dir}"}, needs="ca_dir"),
    Case("host-name-in-certificate", "https://localhost:{tls.port}/s", ok(b"tls"),
         {"tls": ["GET /s"]}, kwargs=CA),
    Case("default-bundle-fails", "{tls.url}/s", fails(rex.SSLError)),
    Case("verify-true-fails", "{tls.url}/s", fails(rex.SSLError), kwargs={"verify": True}),
    Case("wrong-ca-fails", "{tls.url}/s", fails(rex.SSLError),
         kwargs={"verify": "{pki.other_ca}"}),
    Case("address-not-in-certificate-fails", "{tls2.url}/s", fails(rex.SSLError), kwargs=CA),
    Case("verify-false", "{tls.url}/s", ok(b"tls"), {"tls": ["GET /s"]},
         kwargs={"verify": False}),
    Case("missing-ca-file-raises-oserror", "{tls.url}/s", raises(OSError, NO_CA),
         kwargs={"verify": "/no/such/file"}),
    Case("missing-ca-file-unused-for-http", "{plain.url}/x", ok(b"plain"),
         {"plain": ["GET /x"]}, kwargs={"verify": "/no/such/file"}),
    Case("session-verify-ca", "{tls.url}/s", ok(b"tls"), {"tls": ["GET /s"]},
         session={"verify": "{pki.ca}"}),
    Case("session-verify-false", "{tls.url}/s", ok(b"tls"), {"tls": ["GET /s"]},
         session={"verify": False}),
    Case("request-verify-true-over-session-false", "{tls.url}/s", fails(rex.SSLError),
         session={"verify": False}, kwargs={"verify": True}),
    Case("request-ca-over-session-false", "{tls.url}/s", ok(b"tls"), {"tls": ["GET /s"]},
         session={"verify": False}, kwargs=CA),
]  # fmt: skip


@pytest.mark.parametrize("case", VERIFY_CASES, ids=lambda case: case.id)
def test_verify(
    case: Case, kind: str, servers: Servers, open_caller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_case(case, kind, servers, open_caller, monkeypatch)


# -- 3: proxy credentials --------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["http", "https"])
@pytest.mark.parametrize("given_as", ["request", "session", "environment"])
def test_proxy_credentials_go_to_the_proxy_only(
    scheme: str,
    given_as: str,
    kind: str,
    servers: Servers,
    open_caller: Callable[..., Caller],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy: ForwardProxy = servers["auth_proxy"]
    origin: Origin = servers["plain" if scheme == "http" else "tls"]
    proxies = {scheme: proxy.url_with(USER, PASSWORD)}
    kwargs: dict[str, Any] = {"verify": str(servers.pki.ca)} if scheme == "https" else {}
    if given_as == "environment":
        monkeypatch.setenv(f"{scheme.upper()}_PROXY", proxies[scheme])
    caller = open_caller(**({"proxies": proxies} if given_as == "session" else {}))
    if given_as == "request":
        kwargs["proxies"] = proxies
    outcome = caller.call(f"{origin.url}/secret", **kwargs)
    target = f"{origin.url}/secret" if scheme == "http" else origin.address
    hidden = {"proxy-authorization", "authorization"}
    actual = {
        "outcome": seen_as(outcome, ok(origin.body), kind),
        "proxy saw": [(s.method, s.target, s.header("Proxy-Authorization")) for s in proxy.seen],
        "origin saw": [(s.method, s.target, sorted(hidden & s.names())) for s in origin.seen],
    }
    expected: dict[str, Any] = {
        "outcome": expected_as(ok(origin.body)),
        "proxy saw": [("GET" if scheme == "http" else "CONNECT", target, basic(USER, PASSWORD))],
        "origin saw": [("GET", "/secret", [])],  # never to the origin, in the tunnel neither
    }
    differ(actual, expected)
    if scheme == "http":  # the absolute-form request names the origin in its Host header
        assert proxy.seen[0].header("Host") == origin.address


def test_connect_carries_none_of_the_request_headers(
    kind: str, servers: Servers, open_caller: Callable[..., Caller]
) -> None:
    # requests' CONNECT has no header but Proxy-Authorization: the origin's credentials and
    # the locustfile's headers travel inside the tunnel only.
    proxy: ForwardProxy = servers["proxy"]
    origin: Origin = servers["tls"]
    headers = {"Authorization": "Bearer origin-only", "X-Locustfile": "1"}
    caller = open_caller()
    caller.client.headers.update({"X-Session": "1"})
    caller.call(
        f"{origin.url}/s", headers=headers, proxies={"https": proxy.url}, verify=str(servers.pki.ca)
    )
    mine = {"authorization", "x-locustfile", "x-session"}
    actual = {
        "proxy saw": [(s.method, sorted(mine & s.names())) for s in proxy.seen],
        "origin saw": [(s.method, sorted(mine & s.names())) for s in origin.seen],
    }
    expected = {"proxy saw": [("CONNECT", [])], "origin saw": [("GET", sorted(mine))]}
    differ(actual, expected)


AUTH_TARGET = "GET {plain.url}/x"
AUTH_CASES = [
    Case("http-without-credentials-407", "{plain.url}/x", ok(ForwardProxy.BODY_407, 407),
         {"auth_proxy": [AUTH_TARGET]}, kwargs={"proxies": {"http": "{auth_proxy.url}"}}),
    Case("http-wrong-password-407", "{plain.url}/x", ok(ForwardProxy.BODY_407, 407),
         {"auth_proxy": [AUTH_TARGET]},
         kwargs={"proxies": {"http": "http://ann:nope@{auth_proxy.address}"}}),
    # requests sends no Proxy-Authorization for a user name without a password.
    Case("http-user-without-password-407", "{plain.url}/x", ok(ForwardProxy.BODY_407, 407),
         {"auth_proxy": [AUTH_TARGET]},
         kwargs={"proxies": {"http": "http://ann@{auth_proxy.address}"}}),
    Case("https-without-credentials-proxy-error", "{tls.url}/s", fails(rex.ProxyError),
         {"auth_proxy": ["CONNECT {tls.address}"]},
         kwargs={"proxies": {"https": "{auth_proxy.url}"}, **CA}),
]  # fmt: skip


@pytest.mark.parametrize("case", AUTH_CASES, ids=lambda case: case.id)
def test_proxy_requiring_credentials(
    case: Case, kind: str, servers: Servers, open_caller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_case(case, kind, servers, open_caller, monkeypatch)


def test_user_only_proxy_url_sends_no_proxy_authorization(
    kind: str, servers: Servers, open_caller: Callable[..., Caller]
) -> None:
    # requests' get_auth_from_url gives ("", "") for a URL without a password: no header at all.
    proxy: ForwardProxy = servers["auth_proxy"]
    origin: Origin = servers["plain"]
    open_caller().call(f"{origin.url}/x", proxies={"http": f"http://ann@{proxy.address}"})
    seen = [(s.method, s.target, s.header("Proxy-Authorization")) for s in proxy.seen]
    differ({"proxy saw": seen}, {"proxy saw": [("GET", f"{origin.url}/x", None)]})


# -- 5: the environment ----------------------------------------------------------------------------

P, P2 = "{proxy.url}", "{proxy2.url}"
VIA2 = {"proxy2": ["GET {plain.url}/x?y=1"], "plain": ["GET /x?y=1"]}
LOCAL = "http://localhost:{plain.port}/x?y=1"
VIA_LOCAL = {"proxy": [f"GET {LOCAL}"], "plain": ["GET /x?y=1"]}

ENV_PROXY_CASES = [
    Case("HTTP_PROXY", "{plain.url}/x?y=1", ok(b"plain"), VIA_PROXY, env={"HTTP_PROXY": P}),
    Case("http_proxy", "{plain.url}/x?y=1", ok(b"plain"), VIA_PROXY, env={"http_proxy": P}),
    Case("HTTP_PROXY-not-for-https", "{tls.url}/s", ok(b"tls"), {"tls": ["GET /s"]},
         env={"HTTP_PROXY": P}, kwargs=CA),
    Case("HTTPS_PROXY", "{tls.url}/s", ok(b"tls"), TUNNEL, env={"HTTPS_PROXY": P}, kwargs=CA),
    Case("https_proxy", "{tls.url}/s", ok(b"tls"), TUNNEL, env={"https_proxy": P}, kwargs=CA),
    Case("HTTPS_PROXY-not-for-http", "{plain.url}/x?y=1", ok(b"plain"), DIRECT,
         env={"HTTPS_PROXY": P}),
    Case("ALL_PROXY-http", "{plain.url}/x?y=1", ok(b"plain"), VIA_PROXY, env={"ALL_PROXY": P}),
    Case("all_proxy-https", "{tls.url}/s", ok(b"tls"), TUNNEL, env={"all_proxy": P}, kwargs=CA),
    Case("HTTP_PROXY-over-ALL_PROXY", "{plain.url}/x?y=1", ok(b"plain"), VIA_PROXY,
         env={"HTTP_PROXY": P, "ALL_PROXY": P2}),
    Case("lower-case-over-upper-case", "{plain.url}/x?y=1", ok(b"plain"), VIA_PROXY,
         env={"http_proxy": P, "HTTP_PROXY": P2}),
    Case("empty-lower-case-hides-upper-case", "{plain.url}/x?y=1", ok(b"plain"), DIRECT,
         env={"http_proxy": "", "HTTP_PROXY": P2}),
    Case("credentials-in-HTTP_PROXY", "{plain.url}/x", ok(b"plain"),
         {"auth_proxy": [AUTH_TARGET], "plain": ["GET /x"]},
         env={"HTTP_PROXY": "http://ann:p%40ss%20word@{auth_proxy.address}"}),
    # trust_env = False: the environment is not read at all.
    Case("trust-env-false", "{plain.url}/x?y=1", ok(b"plain"), DIRECT,
         env={"HTTP_PROXY": P}, session={"trust_env": False}),
    Case("trust-env-false-https", "{tls.url}/s", ok(b"tls"), {"tls": ["GET /s"]},
         env={"ALL_PROXY": P}, session={"trust_env": False}, kwargs=CA),
    # Precedence: proxies= over the environment; None there removes a proxy.
    Case("request-proxies-over-env", "{plain.url}/x?y=1", ok(b"plain"), VIA_PROXY,
         env={"HTTP_PROXY": P2}, kwargs={"proxies": {"http": P}}),
    Case("request-none-over-env", "{plain.url}/x?y=1", ok(b"plain"), DIRECT,
         env={"HTTP_PROXY": P}, kwargs={"proxies": {"http": None}}),
    # psf/requests#2018, documented there: an environment proxy beats session.proxies.
    Case("quirk-env-over-session-proxies", "{plain.url}/x?y=1", ok(b"plain"), VIA2,
         env={"HTTP_PROXY": P2}, session={"proxies": {"http": P}}),
    Case("quirk-REQUEST_METHOD-hides-HTTP_PROXY", "{plain.url}/x?y=1", ok(b"plain"), DIRECT,
         env={"HTTP_PROXY": P, "REQUEST_METHOD": "GET"}),
    Case("quirk-REQUEST_METHOD-keeps-http_proxy", "{plain.url}/x?y=1", ok(b"plain"), VIA_PROXY,
         env={"http_proxy": P, "REQUEST_METHOD": "GET"}),
]  # fmt: skip


@pytest.mark.parametrize("case", ENV_PROXY_CASES, ids=lambda case: case.id)
def test_proxy_from_the_environment(
    case: Case, kind: str, servers: Servers, open_caller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_case(case, kind, servers, open_caller, monkeypatch)


@pytest.mark.parametrize("timeout", [None, TIMEOUT_S], ids=["plain", "with-timeout"])
def test_a_session_made_after_the_environment_changed_follows_it(
    kind: str,
    servers: Servers,
    open_caller: Any,
    monkeypatch: pytest.MonkeyPatch,
    timeout: float | None,
) -> None:
    """requests reads the environment per request, ours when a session first sends: a
    session made after ``HTTP_PROXY`` or ``NO_PROXY`` changed goes where the new values say,
    to the same origin (what one origin was found to need was once kept for the whole process:
    a test that set a proxy sent a later test's requests, on a port used again, to it)."""
    url = fill("{plain.url}/x?y=1", servers)
    steps = [
        ({"HTTP_PROXY": P}, "proxy"),
        ({}, "plain"),
        ({"HTTP_PROXY": P2}, "proxy2"),
        ({"HTTP_PROXY": P, "NO_PROXY": "127.0.0.1"}, "plain"),
        ({"http_proxy": P2}, "proxy2"),
    ]
    seen = []
    for env, _ in steps:
        for name in ("HTTP_PROXY", "http_proxy", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
        for name, value in fill(env, servers).items():
            monkeypatch.setenv(name, value)
        before = {name: len(servers[name].seen) for name in ("proxy", "proxy2")}
        outcome = open_caller().call(url, timeout=timeout)
        assert (outcome.status, outcome.body) == (200, b"plain"), outcome
        went = [name for name in before if len(servers[name].seen) > before[name]]
        seen.append(went[0] if went else "plain")
    assert seen == [where for _, where in steps]


def _no_proxy(value: str, url: str = "{plain.url}/x?y=1", direct: bool = True, **more: Any) -> Case:
    route = DIRECT if direct else (VIA_LOCAL if url == LOCAL else VIA_PROXY)
    env = {"HTTP_PROXY": P, "NO_PROXY": value, **more.pop("env", {})}
    shown = value.replace("{plain.port}", "<port>")
    name = more.pop("id", None) or f"{'direct' if direct else 'proxied'}:{shown!r}"
    return Case(name, url, ok(b"plain"), route, env=env, **more)


NO_PROXY_CASES = [
    _no_proxy("127.0.0.1"),
    _no_proxy("127.0.0.2", direct=False),
    _no_proxy("127.0.0.0/8"),
    _no_proxy("127.0.0.1/32"),
    _no_proxy(" example.com , 127.0.0.1 "),
    _no_proxy("*"),
    _no_proxy("localhost", direct=False),  # an address is not matched by name
    _no_proxy("localhost", url=LOCAL),
    _no_proxy(".localhost", url=LOCAL),
    _no_proxy("LOCALHOST", url=LOCAL),
    _no_proxy("localhost:{plain.port}", url=LOCAL),
    _no_proxy("localhost:1", url=LOCAL, direct=False),
    # requests changed this one (2.32 takes "ocalhost" for a suffix of "localhost", later
    # versions do not): the case follows the requests installed, which both clients use.
    _no_proxy(
        "ocalhost",
        url=LOCAL,
        direct=should_bypass_proxies("http://localhost/", no_proxy="ocalhost"),
        id="suffix-not-at-a-dot",
    ),
    # Quirks: a port never matches an address, "*" only alone, an address's tail matches.
    _no_proxy("127.0.0.1:{plain.port}", direct=False, id="quirk-address-with-port-proxied"),
    _no_proxy("example.com,*", direct=False, id="quirk-star-in-a-list-proxied"),
    _no_proxy("0.0.1", id="quirk-address-suffix-direct"),
    _no_proxy("127.0.0.2", direct=False, env={"no_proxy": "127.0.0.2", "NO_PROXY": "127.0.0.1"},
              id="lower-case-no_proxy-over-upper-case"),
    Case("lower-case-no_proxy", "{plain.url}/x?y=1", ok(b"plain"), DIRECT,
         env={"HTTP_PROXY": P, "no_proxy": "127.0.0.1"}),
    Case("NO_PROXY-with-HTTPS_PROXY", "{tls.url}/s", ok(b"tls"), {"tls": ["GET /s"]},
         env={"HTTPS_PROXY": P, "NO_PROXY": "127.0.0.1"}, kwargs=CA),
    # NO_PROXY filters the environment's proxies only, never those the locustfile names.
    Case("NO_PROXY-not-for-request-proxies", "{plain.url}/x?y=1", ok(b"plain"), VIA_PROXY,
         env={"NO_PROXY": "127.0.0.1"}, kwargs={"proxies": {"http": P}}),
    Case("NO_PROXY-not-for-session-proxies", "{plain.url}/x?y=1", ok(b"plain"), VIA_PROXY,
         env={"NO_PROXY": "127.0.0.1"}, session={"proxies": {"http": P}}),
    Case("no_proxy-key-in-request-proxies", "{plain.url}/x?y=1", ok(b"plain"), DIRECT,
         env={"HTTP_PROXY": P}, kwargs={"proxies": {"no_proxy": "127.0.0.1"}}),
    Case("quirk-no_proxy-key-in-session-proxies-ignored", "{plain.url}/x?y=1", ok(b"plain"),
         VIA_PROXY, env={"HTTP_PROXY": P}, session={"proxies": {"no_proxy": "127.0.0.1"}}),
]  # fmt: skip


@pytest.mark.parametrize("case", NO_PROXY_CASES, ids=lambda case: case.id)
def test_no_proxy(
    case: Case, kind: str, servers: Servers, open_caller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_case(case, kind, servers, open_caller, monkeypatch)


TLS_DIRECT = {"tls": ["GET /s"]}
NO_BUNDLE = "invalid path: /no/such$"

ENV_CA_CASES = [
    Case("REQUESTS_CA_BUNDLE", "{tls.url}/s", ok(b"tls"), TLS_DIRECT,
         env={"REQUESTS_CA_BUNDLE": "{pki.ca}"}),
    Case("CURL_CA_BUNDLE", "{tls.url}/s", ok(b"tls"), TLS_DIRECT,
         env={"CURL_CA_BUNDLE": "{pki.ca}"}),
    Case("REQUESTS_CA_BUNDLE-directory", "{tls.url}/s", ok(b"tls"), TLS_DIRECT,
         env={"REQUESTS_CA_BUNDLE": "{pki.ca_dir}"}, needs="ca_dir"),
    Case("REQUESTS_CA_BUNDLE-over-CURL_CA_BUNDLE", "{tls.url}/s", fails(rex.SSLError),
         env={"REQUESTS_CA_BUNDLE": "{pki.other_ca}", "CURL_CA_BUNDLE": "{pki.ca}"}),
    Case("empty-REQUESTS_CA_BUNDLE-falls-to-CURL", "{tls.url}/s", ok(b"tls"), TLS_DIRECT,
         env={"REQUESTS_CA_BUNDLE": "", "CURL_CA_BUNDLE": "{pki.ca}"}),
    Case("missing-REQUESTS_CA_BUNDLE-raises-oserror", "{tls.url}/s",
         raises(OSError, NO_BUNDLE), env={"REQUESTS_CA_BUNDLE": "/no/such"}),
    Case("missing-REQUESTS_CA_BUNDLE-unused-for-http", "{plain.url}/x", ok(b"plain"),
         {"plain": ["GET /x"]}, env={"REQUESTS_CA_BUNDLE": "/no/such"}),
    Case("env-bundle-with-verify-true", "{tls.url}/s", ok(b"tls"), TLS_DIRECT,
         env={"REQUESTS_CA_BUNDLE": "{pki.ca}"}, kwargs={"verify": True}),
    Case("request-ca-over-env-bundle", "{tls.url}/s", ok(b"tls"), TLS_DIRECT,
         env={"REQUESTS_CA_BUNDLE": "{pki.other_ca}"}, kwargs=CA),
    Case("request-verify-false-over-env-bundle", "{tls.url}/s", ok(b"tls"), TLS_DIRECT,
         env={"REQUESTS_CA_BUNDLE": "{pki.other_ca}"}, kwargs={"verify": False}),
    Case("env-bundle-through-tunnel", "{tls.url}/s", ok(b"tls"), TUNNEL,
         env={"REQUESTS_CA_BUNDLE": "{pki.ca}", "HTTPS_PROXY": P}),
    Case("trust-env-false-ignores-env-bundle", "{tls.url}/s", fails(rex.SSLError),
         env={"REQUESTS_CA_BUNDLE": "{pki.ca}"}, session={"trust_env": False}),
    # psf/requests#3829 (open): the environment's bundle beats any session.verify.
    Case("quirk-env-bundle-over-session-verify-false", "{tls.url}/s", fails(rex.SSLError),
         env={"REQUESTS_CA_BUNDLE": "{pki.other_ca}"}, session={"verify": False}),
    Case("quirk-env-bundle-over-session-ca", "{tls.url}/s", ok(b"tls"), TLS_DIRECT,
         env={"REQUESTS_CA_BUNDLE": "{pki.ca}"}, session={"verify": "{pki.other_ca}"}),
]  # fmt: skip


@pytest.mark.parametrize("case", ENV_CA_CASES, ids=lambda case: case.id)
def test_ca_bundle_from_the_environment(
    case: Case, kind: str, servers: Servers, open_caller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_case(case, kind, servers, open_caller, monkeypatch)


# -- 7: client certificates ------------------------------------------------------------------------

MTLS = {"mtls": [f"GET /s cert={CLIENT_NAME}"]}
# requests: "Could not find the TLS certificate file, invalid path: ..." (key file: likewise)
NO_CERT = "certificate file, invalid path: /no/such$"
NO_KEY = "key file, invalid path: /no/such/key$"

CERT_CASES = [
    Case("cert-and-key", "{mtls.url}/s", ok(b"mtls"), MTLS,
         kwargs={"cert": ("{pki.client_cert}", "{pki.client_key}"), **CA}),
    Case("combined-pem", "{mtls.url}/s", ok(b"mtls"), MTLS,
         kwargs={"cert": "{pki.client_combined}", **CA}),
    Case("session-cert", "{mtls.url}/s", ok(b"mtls"), MTLS,
         session={"cert": ("{pki.client_cert}", "{pki.client_key}")}, kwargs=CA),
    # TLS 1.3: the handshake ends before the server checks; its alert comes with the answer.
    Case("without-cert-fails", "{mtls.url}/s", fails(rex.ConnectionError), kwargs=CA),
    Case("cert-to-an-origin-not-asking", "{tls.url}/s", ok(b"tls"), TLS_DIRECT,
         kwargs={"cert": "{pki.client_combined}", **CA}),
    Case("key-not-of-the-cert-fails", "{mtls.url}/s", fails(rex.SSLError),
         kwargs={"cert": ("{pki.client_cert}", "{pki.server_key}"), **CA}),
    Case("missing-cert-raises-oserror", "{mtls.url}/s", raises(OSError, NO_CERT),
         kwargs={"cert": "/no/such", **CA}),
    Case("missing-key-raises-oserror", "{mtls.url}/s", raises(OSError, NO_KEY),
         kwargs={"cert": ("{pki.client_cert}", "/no/such/key"), **CA}),
    Case("quirk-missing-cert-raises-for-http-too", "{plain.url}/x",
         raises(OSError, NO_CERT), kwargs={"cert": "/no/such"}),
]  # fmt: skip


@pytest.mark.parametrize("case", CERT_CASES, ids=lambda case: case.id)
def test_client_certificate(
    case: Case, kind: str, servers: Servers, open_caller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_case(case, kind, servers, open_caller, monkeypatch)


# -- kept-alive connections must not carry one request's settings into the next -----------------


def test_changing_proxies_between_requests(
    kind: str, servers: Servers, open_caller: Callable[..., Caller]
) -> None:
    origin, proxy, proxy2 = servers["plain"], servers["proxy"], servers["proxy2"]
    caller = open_caller()
    url = f"{origin.url}/x"
    steps: list[tuple[str, dict[str, Any], dict[str, Any] | None]] = [
        ("direct", {}, None),
        ("session proxy", {}, {"http": proxy.url}),
        ("request proxy", {"proxies": {"http": proxy2.url}}, {"http": proxy.url}),
        ("request None", {"proxies": {"http": None}}, {"http": proxy.url}),
        ("session proxy again", {}, {"http": proxy.url}),
        ("session cleared", {}, {}),
    ]
    for _, kwargs, session_proxies in steps:
        if session_proxies is not None:
            caller.client.proxies = session_proxies
        caller.call(url, **kwargs)
    expected = {
        "plain": ["GET /x"] * 6,
        "proxy": [f"GET {url}", f"GET {url}"],
        "proxy2": [f"GET {url}"],
    }
    differ(servers.routes(), expected)


def test_changing_tls_settings_between_requests(
    kind: str, servers: Servers, open_caller: Callable[..., Caller]
) -> None:
    pki = servers.pki
    origin, mtls = servers["tls"], servers["mtls"]
    caller = open_caller()
    ca, other = str(pki.ca), str(pki.other_ca)
    cert = (str(pki.client_cert), str(pki.client_key))
    calls: list[tuple[str, str, dict[str, Any], Expect]] = [
        ("1 verify=ca", origin.url, {"verify": ca}, ok(b"tls")),
        ("2 verify=other_ca", origin.url, {"verify": other}, fails(rex.SSLError)),
        ("3 verify=ca", origin.url, {"verify": ca}, ok(b"tls")),
        ("4 default verify", origin.url, {}, fails(rex.SSLError)),
        ("5 mtls with cert", mtls.url, {"verify": ca, "cert": cert}, ok(b"mtls")),
        ("6 mtls without", mtls.url, {"verify": ca}, fails(rex.ConnectionError)),
    ]
    # 2, 4 and 6 must not reuse the kept-alive connection that 1, 3 or 5 verified or opened.
    seen = {name: seen_as(caller.call(url, **kw), want, kind) for name, url, kw, want in calls}
    differ(seen, {name: expected_as(want) for name, _, _, want in calls})


# -- 8, 9: what cannot be honoured is refused, never ignored ---------------------------------------

SOCKS = "(?i)socks"
NOT_SOCKS = importlib.util.find_spec("socks") is None

SOCKS_CASES = [
    Case("socks5-request", "{plain.url}/x", raises(rex.InvalidSchema, SOCKS, any_class=True),
         kwargs={"proxies": {"http": "socks5://127.0.0.1:1"}}),
    Case("socks5h-https", "{tls.url}/s", raises(rex.InvalidSchema, SOCKS, any_class=True),
         kwargs={"proxies": {"https": "socks5h://127.0.0.1:1"}, **CA}),
    Case("socks4-session", "{plain.url}/x", raises(rex.InvalidSchema, SOCKS, any_class=True),
         session={"proxies": {"all": "socks4://127.0.0.1:1"}}),
    Case("socks5-ALL_PROXY", "{plain.url}/x", raises(rex.InvalidSchema, SOCKS, any_class=True),
         env={"ALL_PROXY": "socks5://127.0.0.1:1"}),
]  # fmt: skip


@pytest.mark.skipif(not NOT_SOCKS, reason="PySocks is installed: requests would use it")
@pytest.mark.parametrize("case", SOCKS_CASES, ids=lambda case: case.id)
def test_socks_proxy_without_pysocks_is_refused(
    case: Case, kind: str, servers: Servers, open_caller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_case(case, kind, servers, open_caller, monkeypatch)


PROXY_SCHEME = r"(?is)proxy.*ftp|ftp.*proxy"
BAD_PROXY_CASES = [
    Case("ftp-proxy-scheme", "{plain.url}/x", raises(rex.InvalidURL, PROXY_SCHEME, True),
         kwargs={"proxies": {"http": "ftp://127.0.0.1:1"}}),
    Case("ftp-proxy-scheme-env", "{tls.url}/s", raises(rex.InvalidURL, PROXY_SCHEME, True),
         env={"HTTPS_PROXY": "ftp://127.0.0.1:1"}, kwargs=CA),
    Case("proxy-url-without-host", "{plain.url}/x", raises(rex.InvalidURL, "(?i)proxy", True),
         kwargs={"proxies": {"http": "http://"}}),
]  # fmt: skip


@pytest.mark.parametrize("case", BAD_PROXY_CASES, ids=lambda case: case.id)
def test_unusable_proxy_url_is_refused(
    case: Case, kind: str, servers: Servers, open_caller: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_case(case, kind, servers, open_caller, monkeypatch)


@pytest.mark.parametrize("target", ["http", "https"])
def test_https_proxy_is_honoured_or_refused(
    target: str, kind: str, servers: Servers, open_caller: Callable[..., Caller]
) -> None:
    """An https:// proxy URL (TLS to the proxy itself): requests (urllib3 2) speaks it; ours
    must do the same, or raise an error that names the proxy, never go around it."""
    proxy: ForwardProxy = servers["tls_proxy"]
    origin: Origin = servers["plain" if target == "http" else "tls"]
    outcome = open_caller().call(
        f"{origin.url}/x", proxies={target: proxy.url}, verify=str(servers.pki.ca)
    )
    if kind != "requests" and outcome.raised is not None:
        assert re.search(r"(?i)proxy", str(outcome.raised)), outcome.raised
        assert re.search(r"(?i)https", str(outcome.raised)), outcome.raised
        assert not origin.seen
        return
    via = f"GET {origin.url}/x" if target == "http" else f"CONNECT {origin.address}"
    actual = {"outcome": seen_as(outcome, ok(origin.body), kind), "route": servers.routes()}
    name = "plain" if target == "http" else "tls"
    expected = {
        "outcome": expected_as(ok(origin.body)),
        "route": {"tls_proxy": [via], name: ["GET /x"]},
    }
    differ(actual, expected)
    assert all(seen.tls for seen in proxy.seen)


def test_a_misspelt_option_raises_type_error(
    kind: str, servers: Servers, open_caller: Callable[..., Caller]
) -> None:
    origin, proxy = servers["plain"], servers["proxy"]
    outcome = open_caller().call(f"{origin.url}/x", proxy={"http": proxy.url})  # not proxies=
    assert isinstance(outcome.raised, TypeError), f"proxy= was not refused: {outcome}"
    assert "'proxy'" in str(outcome.raised)
    assert servers.routes() == {}


def test_hooks_are_honoured_or_refused(
    kind: str, servers: Servers, open_caller: Callable[..., Caller]
) -> None:
    origin = servers["plain"]
    called: list[int] = []
    outcome = open_caller().call(
        f"{origin.url}/x",
        hooks={"response": [lambda response, **_: called.append(response.status_code)]},
    )
    if kind != "requests" and outcome.raised is not None:
        assert "hooks" in str(outcome.raised), outcome.raised
        return
    assert (outcome.status, called) == (200, [200]), "hooks= neither honoured nor refused"


# -- the fixtures themselves -----------------------------------------------------------------------


def test_proxy_connects_to_loopback_only(servers: Servers) -> None:
    proxy: ForwardProxy = servers["proxy"]
    answers = []
    for request in (
        b"CONNECT 192.0.2.1:443 HTTP/1.1\r\nHost: 192.0.2.1:443\r\n\r\n",
        b"GET http://192.0.2.1/ HTTP/1.1\r\nHost: 192.0.2.1\r\n\r\n",
    ):
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=TIMEOUT_S) as sock:
            sock.sendall(request)
            answers.append(sock.recv(1024).split(b"\r\n", 1)[0])
    assert answers == [b"HTTP/1.1 403 Forbidden"] * 2
    assert proxy.refused == ["192.0.2.1:443", "192.0.2.1:80"]


def test_origin_requires_a_client_certificate_signed_by_the_ca(servers: Servers) -> None:
    import ssl

    pki = servers.pki
    mtls: Origin = servers["mtls"]
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    with (
        socket.create_connection(("127.0.0.1", mtls.port), timeout=TIMEOUT_S) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        tls.sendall(b"GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := tls.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"mtls")
    assert [_line(seen) for seen in mtls.seen] == [f"GET /who cert={CLIENT_NAME}"]
