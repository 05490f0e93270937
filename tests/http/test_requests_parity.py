"""Differential test: HttpUser's and FastHttpUser's clients against ``requests.Session``.

Locust's HttpUser client *is* a ``requests.Session`` (with a base URL prefixed to paths and
request errors returned as responses), so each scenario below is run twice against the same
recording servers on loopback: once through the reference, a ``requests.Session`` with exactly
what Locust's ``HttpSession`` adds (``LocustReference``), and once through our client. What the
servers received and what the caller saw must be the same, after the normalisation described at
``norm_headers`` and ``Tape``, and apart from FastHttpUser's documented differences
(``Allowances``), which are the only ones.

A scenario is a function ``(client, t)``: it makes its calls through ``t.send`` (a request, whose
response is observed whole), ``t.open`` (a request whose body the scenario reads itself) and
``t.note`` (any other value, e.g. the cookie jar); ``t.a``, ``t.b`` and ``t.c`` are the origins'
URLs (``a`` is the client's base URL unless the scenario names another).
"""

from __future__ import annotations

import contextlib
import copy
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlparse, urlunparse

import pytest
import requests
from requests.auth import AuthBase, HTTPBasicAuth, HTTPDigestAuth
from requests.exceptions import InvalidSchema, InvalidURL, MissingSchema, RequestException

from mpswarm.event import EventHook
from mpswarm.http.fast import FastHttpSession
from mpswarm.http.session import HttpSession
from tests.http._recording_server import Origins, Received

# -- FastHttpUser's documented differences ---------------------------------------------------------


@dataclass(frozen=True)
class Allowances:
    """Where a client may differ from requests: each field is applied in one place, named."""

    #: ``json=`` (and no ``data``) without an Accept header of the caller's also sends
    #: ``Accept: application/json`` (Locust's FastHttpSession.request). Applied by the reference
    #: (``LocustReference.request``), which then sends it too.
    accept_json: bool = False
    #: ``response.text`` is None, not "", when no response arrived (Locust's FastResponse).
    #: Applied by the reference (``_FastFailedResponse``).
    no_text_without_response: bool = False
    #: The Accept-Encoding it sends is its own ("gzip, deflate"): not compared, neither on the
    #: wire nor in ``response.request.headers`` nor in ``client.headers`` (``norm_headers``).
    own_accept_encoding: bool = False
    #: A User-Agent the caller removed (``headers={"User-Agent": None}``) is not put back on
    #: the wire (urllib3, under requests, sends its own): what the servers received is
    #: compared without User-Agent lines (``look_received``).
    own_user_agent: bool = False


#: HttpUser's client is a requests.Session: no difference at all.
HTTP_USER = Allowances()
#: FastHttpUser: the differences Locust documents (its transport is not urllib3), nothing else.
FAST_HTTP_USER = Allowances(
    accept_json=True, no_text_without_response=True, own_accept_encoding=True, own_user_agent=True
)

CLIENTS = {"HttpUser": (HttpSession, HTTP_USER), "FastHttpUser": (FastHttpSession, FAST_HTTP_USER)}


# -- the reference: requests.Session plus what Locust's HttpSession adds ------------------------

_ABSOLUTE = re.compile(r"^https?://", re.IGNORECASE)  # Locust's absolute_http_url_regexp


# -- mpswarm's choices where Locust's HttpSession does something no user relies on -------------
# Applied to both clients by the reference, each in one place, named:
# - ``ok`` and ``bool()`` of a failed request (no response) are False: Locust's re-raise the
#   request's error (requests' ``ok`` calls ``raise_for_status``, which Locust's response makes
#   raise its error), so ``if not response.ok`` cannot be written for a failed request there.
# - A request is recorded under its first URL's path when it ends in TooManyRedirects, as
#   every other request is: Locust names that one after the last redirect's target.
# - The request event's ``url`` carries no credentials (``user:password@`` in a full URL):
#   reports must not show them; Locust passes requests' URL on as it is.


class LocustResponse(requests.Response):
    """Locust's ResponseContextManager, as far as a response without catch_response goes."""

    error: Exception | None = None

    def raise_for_status(self) -> None:
        if self.error:
            raise self.error
        requests.Response.raise_for_status(self)

    @property
    def ok(self) -> bool:  # mpswarm's choice: False for a failed request (see above)
        if self.error is not None:
            return False
        return requests.Response.ok.fget(self)  # type: ignore[attr-defined,no-any-return]


class _FastFailedResponse(LocustResponse):
    @property
    def text(self) -> Any:  # Allowances.no_text_without_response
        return None

    def json(self, **kwargs: Any) -> Any:
        plain = copy.copy(self)  # json() as requests' (it reads text, which is "" there)
        plain.__class__ = LocustResponse
        return plain.json(**kwargs)


class LocustReference(requests.Session):
    """``requests.Session`` with Locust's HttpSession on top (``locust/clients.py``): the base
    URL's credentials become ``self.auth``, paths get ``base_url`` prefixed (``_build_url``),
    a ``RequestException`` other than MissingSchema/InvalidSchema/InvalidURL becomes a response
    with ``status_code`` 0 and ``error`` set (``_send_request_safe_mode``), and each request
    appends the request event Locust would fire to ``events``."""

    def __init__(self, base_url: str, allow: Allowances) -> None:
        super().__init__()
        self.allow = allow
        self.events: list[dict[str, Any]] = []
        self.base_url = base_url
        parsed = urlparse(base_url)
        if parsed.username and parsed.password:
            netloc = parsed.netloc.rpartition("@")[2]
            self.base_url = urlunparse(
                (parsed.scheme, netloc, parsed.path, parsed.params, parsed.query, parsed.fragment)
            )
            self.auth = HTTPBasicAuth(unquote(parsed.username), unquote(parsed.password))

    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        name: str | None = None,
        catch_response: bool = False,
        context: Any = None,
        *,
        data: Any = None,
        json: Any = None,
        **kwargs: Any,
    ) -> Any:
        if self.allow.accept_json and json is not None and not data:
            given = kwargs.get("headers") or {}
            if self.headers.get("Accept") == "*/*" and not any(
                key.lower() == "accept" for key in given
            ):
                kwargs["headers"] = {**given, "Accept": "application/json"}
        complete_url = url if _ABSOLUTE.match(url) else f"{self.base_url}{url}"
        try:
            response = super().request(method, complete_url, data=data, json=json, **kwargs)
        except (MissingSchema, InvalidSchema, InvalidURL):
            raise
        except RequestException as exc:
            response = LocustResponse()
            if self.allow.no_text_without_response:
                response.__class__ = _FastFailedResponse
            response.error, response.status_code = exc, 0
            response.request = exc.request
        else:
            response.__class__ = LocustResponse
        first = ((response.history and response.history[0]) or response).request
        if isinstance(getattr(response, "error", None), requests.TooManyRedirects):
            # mpswarm's choice: named after the first URL, as any request (see above)
            first = self.prepare_request(
                requests.Request(method, complete_url, params=kwargs.get("params"))
            )
        if first:
            complete_url = _without_credentials(str(first.url))  # mpswarm's choice (above)
            name = name or first.path_url
        else:
            name = name or str(url)
        if kwargs.get("stream", False):
            length = int(response.headers.get("content-length") or 0)
        else:
            length = len(response.content or b"")
        try:
            response.raise_for_status()
            failed = False
        except RequestException:
            failed = True
        self.events.append(_event(method, name, complete_url, length, failed))
        return response


def _without_credentials(url: str) -> str:
    parts = urlparse(url)
    if "@" not in parts.netloc:
        return url
    return urlunparse(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def _event(method: str, name: str, url: str, length: int, failed: bool) -> dict[str, Any]:
    return {
        "request_type": method,
        "name": name,
        "url": url,
        "response_length": length,
        "failed": failed,
    }


# -- observations ------------------------------------------------------------------------------


class Exc:
    """An exception in an observation. Ours matches the reference's when it is an instance of
    the reference's class; the message is compared only for raise_for_status's HTTPError (our
    other error texts are shortened on purpose)."""

    def __init__(self, exc: BaseException, with_message: bool = False) -> None:
        self.type = type(exc)
        self.message = str(exc)
        self.with_message = with_message and isinstance(exc, requests.HTTPError)

    def accepts(self, ours: Any) -> bool:
        return (
            isinstance(ours, Exc)
            and issubclass(ours.type, self.type)
            and (not self.with_message or ours.message == self.message)
        )

    def __repr__(self) -> str:
        name = f"{self.type.__module__}.{self.type.__qualname__}"
        return f"raises {name}({self.message[:150]!r})"


def attempt(get: Callable[[], Any], with_message: bool = False) -> Any:
    """``get()``, or the exception it raised (as an ``Exc``)."""
    try:
        return get()
    except Exception as exc:
        return Exc(exc, with_message)


_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_DIGEST_RANDOM = re.compile(r'\b(cnonce|response)="[^"]*"')


def norm_headers(
    pairs: Any, allow: Allowances, body: Any = None, multipart: bool = False
) -> dict[str, list[Any]]:
    """Header pairs as ``{lower-case name: [values in order]}``: the order of different names
    and the case of names are not compared. Masked: User-Agent's value (ours names mpswarm,
    requests itself), a Digest answer's random cnonce and response (the server checks them: a
    wrong one is a 401), a multipart boundary (random) and a multipart Content-Length when it is
    the body's length (it depends on the boundary's length); Accept-Encoding is dropped under
    ``Allowances.own_accept_encoding``."""
    found: dict[str, list[Any]] = {}
    for name, value in pairs:
        key = name.lower() if isinstance(name, str) else name
        if key == "user-agent":
            value = "<any user agent>"
        elif key == "accept-encoding" and allow.own_accept_encoding:
            continue
        elif isinstance(value, str) and key == "authorization" and value.startswith("Digest "):
            value = _DIGEST_RANDOM.sub(r'\1="<random>"', value)
        elif isinstance(value, str) and key == "content-type" and multipart:
            value = _BOUNDARY.sub("boundary=<random>", value)
        elif key == "content-length" and multipart and str(value) == _length(body):
            value = "<the body's length>"
        found.setdefault(key, []).append(value)
    return found


def _length(body: Any) -> str | None:
    if isinstance(body, (bytes, str)):
        return str(len(body if isinstance(body, bytes) else body.encode()))
    return None


def norm_body(body: Any, content_type: Any) -> Any:
    """A body for comparison: bytes and str as they are (the type counts), a multipart body
    as its parts (the boundary is random), a stream as what it is."""
    if body is None:
        return None
    if isinstance(body, (bytes, str)):
        if isinstance(content_type, str) and content_type.lower().startswith("multipart/"):
            raw = body.encode() if isinstance(body, str) else body
            return {"type": type(body).__name__, **_multipart(raw, content_type)}
        return body
    return "<file object>" if hasattr(body, "read") else "<iterable>"


def _multipart(body: bytes, content_type: str) -> dict[str, Any]:
    found = _BOUNDARY.search(content_type)
    if found is None:
        return {"unparsed": body}
    pieces = body.split(b"--" + found.group(1).encode())
    parts = []
    for piece in pieces[1:-1]:
        head, _, content = piece.removeprefix(b"\r\n").removesuffix(b"\r\n").partition(b"\r\n\r\n")
        parts.append({"headers": head.decode("latin-1").split("\r\n"), "content": content})
    return {"preamble": pieces[0], "parts": parts, "end": pieces[-1] if len(pieces) > 1 else None}


def _is_multipart(pairs: Any) -> bool:
    return any(
        isinstance(name, str)
        and name.lower() == "content-type"
        and isinstance(value, str)
        and value.lower().startswith("multipart/")
        for name, value in pairs
    )


def _content_type(pairs: Any) -> Any:
    return next((v for k, v in pairs if isinstance(k, str) and k.lower() == "content-type"), None)


def look_received(request: Received, allow: Allowances) -> dict[str, Any]:
    """What a server received, for comparison."""
    multipart = _is_multipart(request.headers)
    headers = norm_headers(request.headers, allow, request.body, multipart)
    if allow.own_user_agent:
        headers.pop("user-agent", None)
    return {
        "method": request.method,
        "target": request.target,
        "headers": headers,
        "body": norm_body(request.body, _content_type(request.headers)),
        "chunked": request.chunked,
    }


def look_request(prepared: Any, allow: Allowances) -> Any:
    """``response.request``, for comparison."""
    if prepared is None:
        return None
    pairs = attempt(lambda: list(prepared.headers.items()))
    if isinstance(pairs, Exc):
        return {"headers": pairs}
    body = attempt(lambda: prepared.body)
    return {
        "method": attempt(lambda: prepared.method),
        "url": attempt(lambda: prepared.url),
        "path_url": attempt(lambda: prepared.path_url),
        "body": body if isinstance(body, Exc) else norm_body(body, _content_type(pairs)),
        "headers": norm_headers(pairs, allow, body, _is_multipart(pairs)),
        "headers not found in another case": attempt(
            lambda: [
                name for name, value in pairs if prepared.headers.get(name.swapcase()) != value
            ]
        ),
    }


def look(response: Any, allow: Allowances) -> dict[str, Any]:
    """Everything a caller can see of a response, for comparison."""
    r = response
    return {
        "status_code": attempt(lambda: r.status_code),
        "reason": attempt(lambda: r.reason),
        "url": attempt(lambda: r.url),
        "ok": attempt(lambda: r.ok),
        "bool": attempt(lambda: bool(r)),
        "is_redirect": attempt(lambda: r.is_redirect),
        "is_permanent_redirect": attempt(lambda: r.is_permanent_redirect),
        "history": attempt(lambda: [(h.status_code, h.url, h.request.method) for h in r.history]),
        "headers": attempt(lambda: {name.lower(): value for name, value in r.headers.items()}),
        "headers.get('CONTENT-type')": attempt(lambda: r.headers.get("CONTENT-type")),
        "content": attempt(lambda: r.content),
        "encoding": attempt(lambda: r.encoding),
        "text": attempt(lambda: r.text),
        "json()": attempt(lambda: r.json()),
        "links": attempt(lambda: r.links),
        "cookies.get_dict()": attempt(lambda: r.cookies.get_dict()),
        "raise_for_status()": attempt(r.raise_for_status, with_message=True),
        "error": attempt(lambda: Exc(r.error) if r.error is not None else None),
        "request": attempt(lambda: look_request(r.request, allow)),
    }


def look_head(response: Any, allow: Allowances) -> dict[str, Any]:
    """What a caller can see of a ``stream=True`` response without reading its body."""
    r = response
    return {
        "status_code": attempt(lambda: r.status_code),
        "reason": attempt(lambda: r.reason),
        "url": attempt(lambda: r.url),
        "headers": attempt(lambda: {name.lower(): value for name, value in r.headers.items()}),
        "error": attempt(lambda: Exc(r.error) if r.error is not None else None),
        "request": attempt(lambda: look_request(r.request, allow)),
    }


def _cookie(cookie: Any) -> tuple[Any, ...]:
    return (
        cookie.name,
        cookie.value,
        cookie.domain,
        cookie.path,
        cookie.secure,
        cookie.expires is not None,  # a persistent cookie (its time depends on the clock)
        cookie.domain_specified,
        cookie.get_nonstandard_attr("HttpOnly"),
        cookie.get_nonstandard_attr("SameSite"),
    )


def look_session(client: Any, allow: Allowances) -> dict[str, Any]:
    """The session's cookies and headers after a scenario."""
    return {
        "cookies.get_dict()": attempt(lambda: client.cookies.get_dict()),
        "cookies": attempt(lambda: [_cookie(cookie) for cookie in client.cookies]),
        "headers": attempt(lambda: norm_headers(client.headers.items(), allow)),
        "headers.get('ACCEPT')": attempt(lambda: client.headers.get("ACCEPT")),
    }


class Tape:
    """What a scenario's calls showed, in order, by label; ``t`` in the scenarios."""

    def __init__(self, client: Any, origins: Origins, allow: Allowances, events: list) -> None:
        self.client = client
        self.a, self.b, self.c = (origins[name].url for name in "abc")
        self.allow = allow
        self.entries: dict[str, Any] = {}
        self._events = events
        self._reported = 0
        self._short = {origins[name].url: name.upper() for name in "abc"}
        self.opened: list[Any] = []  # streamed responses, closed after the scenario

    def _label(self, call: Callable[..., Any], args: tuple[Any, ...]) -> str:
        what = str(args[0]) if args else ""
        for url, short in self._short.items():
            what = what.replace(url, short)
        return f"#{len(self.entries) + 1} {getattr(call, '__name__', 'call')} {what[:90]}"

    def _fired(self) -> list[dict[str, Any]]:
        fired = self._events[self._reported :]
        self._reported = len(self._events)
        return fired

    def send(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Make a request (``call(*args, **kwargs)``) and observe its response whole."""
        return self._request(look, call, args, kwargs)

    def open(self, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Make a request and observe its response but not its body (the scenario reads it;
        ``play`` closes it after the scenario, before the session)."""
        response = self._request(look_head, call, args, kwargs)
        if response is not None:
            self.opened.append(response)
        return response

    def _request(self, how: Callable[..., Any], call: Any, args: Any, kwargs: Any) -> Any:
        label = self._label(call, args)
        try:
            response = call(*args, **kwargs)
        except Exception as exc:
            self.entries[label] = {"raised": Exc(exc), "events": self._fired()}
            return None
        events = self._fired()  # fired by the call, before anything reads the response
        self.entries[label] = {"response": how(response, self.allow), "events": events}
        return response

    def note(self, label: str, get: Callable[[], Any]) -> Any:
        """Observe ``get()`` (or what it raised) under ``label``; return it."""
        value = attempt(get)
        self.entries[f"#{len(self.entries) + 1} {label}"] = value
        return value

    def jar(self, *names: str) -> None:
        """Observe the session's cookie jar lookups of ``names``."""
        for name in names:
            self.note(f"{name!r} in cookies", lambda name=name: name in self.client.cookies)
            self.note(f"cookies.get({name!r})", lambda name=name: self.client.cookies.get(name))
            self.note(f"cookies[{name!r}]", lambda name=name: self.client.cookies[name])


# -- running a scenario, and the comparison ------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    call: Callable[[Any, Tape], None]
    base: str = "a"  # a | creds | none | refused | path | path/ (see _base_url)


SCENARIOS: dict[str, Scenario] = {}


def scenario(base: str = "a") -> Callable[[Callable[[Any, Tape], None]], Callable[..., None]]:
    def register(call: Callable[[Any, Tape], None]) -> Callable[..., None]:
        SCENARIOS[call.__name__] = Scenario(call, base)
        return call

    return register


def _base_url(base: str, origins: Origins) -> str:
    a = origins["a"]
    return {
        "a": a.url,
        "creds": f"http://user:pa%40ss@{a.netloc}",
        "none": "",
        "refused": origins.refused,
        "path": f"{a.url}/api",
        "path/": f"{a.url}/api/",
    }[base]


def _ours(kind: type[HttpSession], base_url: str, events: list) -> HttpSession:
    hook = EventHook()

    def listener(**kw: Any) -> None:
        failed = kw["exception"] is not None
        events.append(
            _event(kw["request_type"], kw["name"], kw["url"], kw["response_length"], failed)
        )

    hook.add_listener(listener)
    return kind(base_url=base_url, request_event=hook)


def play(client: Any, events: list, case: Scenario, origins: Origins, allow: Allowances) -> dict:
    """Run ``case`` on ``client`` (closed here); what the caller and the servers saw."""
    origins.take()  # nothing left over from before
    tape = Tape(client, origins, allow, events)
    try:
        try:
            case.call(client, tape)
        except Exception as exc:  # a step that is not t.send/t.note raised
            tape.entries["the scenario stopped"] = Exc(exc)
        tape.entries["session afterwards"] = look_session(client, allow)
        tape.entries["events no request reported"] = tape._fired()
    finally:
        for response in tape.opened:
            with contextlib.suppress(Exception):
                response.close()
        client.close()
    received = {
        name: [look_received(request, allow) for request in requests_]
        for name, requests_ in origins.take().items()
    }
    return {"caller": tape.entries, "server": received}


def differences(reference: Any, ours: Any, path: str = "") -> list[str]:
    """Where ``ours`` differs from ``reference``: one line each."""
    if isinstance(reference, Exc):
        return (
            []
            if reference.accepts(ours)
            else [f"{path}: requests {reference!r}; ours {_show(ours)}"]
        )
    if isinstance(ours, Exc):
        return [f"{path}: requests {_show(reference)}; ours {ours!r}"]
    if isinstance(reference, dict) and isinstance(ours, dict):
        found = []
        for key in [*reference, *(key for key in ours if key not in reference)]:
            where = f"{path}.{key}" if path else str(key)
            if key not in ours:
                found.append(f"{where}: requests {_show(reference[key])}; ours has nothing")
            elif key not in reference:
                found.append(f"{where}: requests has nothing; ours {_show(ours[key])}")
            else:
                found += differences(reference[key], ours[key], where)
        return found
    if isinstance(reference, (list, tuple)) and isinstance(ours, (list, tuple)):
        found = []
        if len(reference) != len(ours):
            found.append(f"{path}: requests {len(reference)} items; ours {len(ours)}")
        for at, (left, right) in enumerate(zip(reference, ours, strict=False)):
            found += differences(left, right, f"{path}[{at}]")
        return found
    if type(reference) is not type(ours) or reference != ours:
        return [f"{path}: requests {_show(reference)}; ours {_show(ours)}"]
    return []


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


@pytest.fixture(scope="module")
def origins() -> Iterator[Origins]:
    servers = Origins()
    yield servers
    servers.close()


@pytest.fixture(autouse=True)
def plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests reads proxies and a netrc from the environment (trust_env): neither here."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NETRC", "/nonexistent/netrc")


# -- helpers for the scenarios -------------------------------------------------------------------


def q(path: str, **query: str | list[str]) -> str:
    """``path`` with a query; list values repeat the key (the server's ``sc=`` and ``h=``)."""
    pairs = [(key, v) for key, vs in query.items() for v in (vs if isinstance(vs, list) else [vs])]
    return f"{path}?{urlencode(pairs, quote_via=quote, safe='')}" if pairs else path


def netloc(url: str) -> str:
    return url.removeprefix("http://")


# == scenarios: cookies ==========================================================================


@scenario()
def cookie_set_then_sent(c: Any, t: Tape) -> None:
    t.send(c.get, q("/", sc="a=1"))
    t.send(c.get, "/echo")
    t.jar("a", "missing")


@scenario()
def cookie_attributes(c: Any, t: Tape) -> None:
    t.send(
        c.get,
        q(
            "/set",
            sc=[
                "a=1; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax",
                "b=2; Expires=Wed, 21 Oct 2099 07:28:00 GMT; Path=/",
                "s=3; Secure; Path=/",  # not sent over http
            ],
        ),
    )
    t.send(c.get, "/echo")
    t.jar("a", "b", "s")


@scenario()
def cookie_deleted_by_max_age_0(c: Any, t: Tape) -> None:
    t.send(c.get, q("/", sc=["a=1; Path=/", "b=2; Path=/"]))
    t.send(c.get, q("/", sc="a=gone; Max-Age=0; Path=/"))
    t.send(c.get, "/echo")
    t.jar("a", "b")


@scenario()
def cookie_deleted_by_past_expiry(c: Any, t: Tape) -> None:
    t.send(c.get, q("/", sc="a=1; Path=/"))
    t.send(c.get, q("/", sc="a=; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Path=/"))
    t.send(c.get, "/echo")
    t.jar("a")


@scenario()
def cookie_path_scoped(c: Any, t: Tape) -> None:
    t.send(c.get, q("/app/login", sc="p=1; Path=/app"))
    t.send(c.get, "/app/page")
    t.send(c.get, "/app")
    t.send(c.get, "/application")
    t.send(c.get, "/other")


@scenario()
def cookie_default_path(c: Any, t: Tape) -> None:
    t.send(c.get, q("/dir/page", sc="d=1"))  # no Path: the default is /dir
    t.send(c.get, "/dir/other")
    t.send(c.get, "/")


@scenario()
def cookie_host_only_not_sent_to_another_host(c: Any, t: Tape) -> None:
    t.send(c.get, q("/", sc="h=1; Path=/"))
    t.send(c.get, t.c + "/echo")  # 127.0.0.2: another host
    t.send(c.get, t.b + "/echo")  # the same host on another port: cookies ignore ports


@scenario()
def cookie_domain_attribute_on_an_ip(c: Any, t: Tape) -> None:
    t.send(c.get, q("/", sc=["d=1; Domain=127.0.0.1; Path=/", "e=2; Domain=127.0.0.2; Path=/"]))
    t.send(c.get, "/echo")
    t.send(c.get, t.c + "/echo")
    t.jar("d", "e")


@scenario()
def cookie_set_on_a_redirect_hop(c: Any, t: Tape) -> None:
    r = t.send(c.get, q("/redirect/302", to="/echo", sc="hop=1; Path=/"))
    t.note("history[0].cookies", lambda: r.history[0].cookies.get_dict())
    t.jar("hop")


@scenario()
def cookie_domain_changes_across_a_redirect(c: Any, t: Tape) -> None:
    target = q(t.c + "/landing", sc="far=2; Path=/")
    t.send(c.get, q("/redirect/302", to=target, sc="near=1; Path=/"))
    t.send(c.get, "/echo")
    t.send(c.get, t.c + "/echo")


@scenario()
def cookie_per_request_not_persisted(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", cookies={"x": "1"})
    t.send(c.get, "/echo")
    t.jar("x")


@scenario()
def cookie_per_request_merged_with_the_jar(c: Any, t: Tape) -> None:
    t.send(c.get, q("/", sc=["a=1; Path=/", "b=2; Path=/"]))
    t.send(c.get, "/echo", cookies={"c": "3", "a": "override"})
    t.send(c.get, "/echo")


@scenario()
def cookie_per_request_kept_across_redirects(c: Any, t: Tape) -> None:
    t.send(c.get, q("/redirect/302", to="/echo"), cookies={"x": "1"})


@scenario()
def cookies_set_by_the_caller(c: Any, t: Tape) -> None:
    c.cookies.set("a", "1")
    c.cookies.set("p", "2", path="/app")
    c.cookies.set("d", "3", domain="127.0.0.2", path="/")
    t.send(c.get, "/echo")
    t.send(c.get, "/app/x")
    t.send(c.get, t.c + "/echo")
    t.jar("a", "p", "d")


@scenario()
def cookies_update_from_a_dict(c: Any, t: Tape) -> None:
    c.cookies.update({"a": "1", "b": "2"})
    t.send(c.get, "/echo")
    t.send(c.get, t.c + "/echo")  # requests' cookies from a dict have no domain
    t.jar("a", "b")


@scenario()
def cookies_clear(c: Any, t: Tape) -> None:
    t.send(c.get, q("/", sc=["a=1; Path=/", "b=2; Path=/"]))
    c.cookies.clear()
    t.send(c.get, "/echo")
    t.jar("a")


@scenario()
def cookies_del_item(c: Any, t: Tape) -> None:
    t.send(c.get, q("/", sc=["a=1; Path=/", "b=2; Path=/"]))
    del c.cookies["a"]
    t.send(c.get, "/echo")
    t.jar("a", "b")


@scenario()
def cookie_csrf_token_sent_back(c: Any, t: Tape) -> None:
    t.send(c.get, q("/login", sc="csrftoken=abc123; Path=/; SameSite=Lax"))
    present = t.note("'csrftoken' in cookies", lambda: "csrftoken" in c.cookies)
    token = t.note("cookies['csrftoken']", lambda: c.cookies["csrftoken"])
    if present is True and isinstance(token, str):
        t.send(c.post, "/login", data={"user": "u", "pw": "p"}, headers={"X-CSRFToken": token})


@scenario()
def cookie_quoted_values(c: Any, t: Tape) -> None:
    t.send(c.get, q("/", sc=['q="a b"; Path=/', 'r="x,y"; Path=/', "s=plain; Path=/"]))
    t.send(c.get, "/echo")
    t.jar("q", "r")


@scenario()
def cookie_one_name_two_paths(c: Any, t: Tape) -> None:
    t.send(c.get, q("/", sc="n=root; Path=/"))
    t.send(c.get, q("/sub/set", sc="n=sub; Path=/sub"))
    t.send(c.get, "/sub/page")
    t.send(c.get, "/")
    t.jar("n")


@scenario()
def cookie_overwritten(c: Any, t: Tape) -> None:
    t.send(c.get, q("/", sc="a=1; Path=/"))
    t.send(c.get, q("/", sc="a=2; Path=/"))
    t.send(c.get, "/echo")
    t.jar("a")


@scenario()
def cookie_set_by_an_error_status(c: Any, t: Tape) -> None:
    t.send(c.get, q("/status/500", sc="err=1; Path=/"))
    t.send(c.get, "/echo")


@scenario()
def cookie_several_in_one_response(c: Any, t: Tape) -> None:
    t.send(c.get, q("/", sc=["x=1; Path=/", "y=2; Path=/", "z=3; Path=/; Max-Age=60"]))
    t.send(c.get, "/echo")


# == scenarios: redirects =========================================================================


def _redirect_case(code: int, verb: str) -> Callable[[Any, Tape], None]:
    def call(c: Any, t: Tape) -> None:
        url = q(f"/redirect/{code}", to="/echo")
        if verb == "get":
            t.send(c.get, url)
        elif verb == "post":
            t.send(c.post, url, data={"k": "v"})
        elif verb == "put":
            t.send(c.put, url, data=b"payload")
        elif verb == "delete":
            t.send(c.delete, url)
        else:
            t.send(c.head, url, allow_redirects=True)

    return call


for _code in (301, 302, 303, 307, 308):
    for _verb in ("get", "post", "put", "delete", "head"):
        SCENARIOS[f"redirect_{_code}_{_verb}"] = Scenario(_redirect_case(_code, _verb))


@scenario()
def redirect_location_relative(c: Any, t: Tape) -> None:
    t.send(c.get, q("/redirect/302", to="next"))
    t.send(c.get, q("/redirect/302", to="../echo"))


@scenario()
def redirect_location_absolute(c: Any, t: Tape) -> None:
    t.send(c.get, q("/redirect/302", to=t.a + "/echo"))


@scenario()
def redirect_location_scheme_relative(c: Any, t: Tape) -> None:
    t.send(c.get, q("/redirect/302", to=f"//{netloc(t.c)}/echo"))


@scenario()
def redirect_location_query_only(c: Any, t: Tape) -> None:
    t.send(c.get, q("/redirect/302", to="?page=2"))


@scenario()
def redirect_location_non_ascii(c: Any, t: Tape) -> None:
    t.send(c.get, q("/redirect/302", to="/café?q=é"))


@scenario()
def redirect_keeps_the_fragment(c: Any, t: Tape) -> None:
    t.send(c.get, q("/redirect/302", to="/echo") + "#section")
    t.send(c.get, q("/redirect/302", to="/echo#new") + "#old")


@scenario()
def redirect_not_followed_when_disallowed(c: Any, t: Tape) -> None:
    t.send(c.get, q("/redirect/302", to="/echo", sc="r=1; Path=/"), allow_redirects=False)
    t.send(c.post, q("/redirect/307", to="/echo"), data="x", allow_redirects=False)


@scenario()
def redirect_without_location(c: Any, t: Tape) -> None:
    t.send(c.get, "/status/302")


@scenario()
def head_not_followed_by_default(c: Any, t: Tape) -> None:
    t.send(c.head, q("/redirect/302", to="/echo"))
    t.send(c.head, q("/redirect/301", to="/echo"), allow_redirects=True)


@scenario()
def redirect_chain_history(c: Any, t: Tape) -> None:
    t.send(c.get, "/redirect-chain/3")


@scenario()
def redirect_loop_too_many(c: Any, t: Tape) -> None:
    t.send(c.get, "/loop")


@scenario()
def redirect_max_redirects_3(c: Any, t: Tape) -> None:
    c.max_redirects = 3
    t.send(c.get, "/redirect-chain/3")
    t.send(c.get, "/redirect-chain/4")


@scenario()
def redirect_params_not_carried(c: Any, t: Tape) -> None:
    t.send(c.get, q("/redirect/302", to="/echo"), params={"x": "1"})


@scenario()
def redirect_307_file_body_rewound(c: Any, t: Tape) -> None:
    t.send(c.post, q("/redirect/307", to="/echo"), data=io.BytesIO(b"rewind me"))


@scenario()
def redirect_307_generator_body(c: Any, t: Tape) -> None:
    t.send(c.post, q("/redirect/307", to="/echo"), data=(part for part in [b"ab", b"cd"]))


@scenario()
def redirect_to_another_port_drops_authorization(c: Any, t: Tape) -> None:
    t.send(c.get, q("/redirect/302", to=t.b + "/echo"), headers={"Authorization": "Bearer x"})


@scenario()
def redirect_authorization_from_headers(c: Any, t: Tape) -> None:
    auth = {"Authorization": "Bearer token"}
    t.send(c.get, q("/redirect/302", to="/echo"), headers=auth)
    t.send(c.get, q("/redirect/302", to=t.c + "/echo"), headers=auth)


@scenario()
def redirect_authorization_from_auth(c: Any, t: Tape) -> None:
    t.send(c.get, q("/redirect/302", to="/echo"), auth=("u", "p"))
    t.send(c.get, q("/redirect/302", to=t.c + "/echo"), auth=("u", "p"))


@scenario()
def redirect_authorization_from_session_auth(c: Any, t: Tape) -> None:
    c.auth = ("su", "sp")
    t.send(c.get, q("/redirect/302", to="/echo"))
    t.send(c.get, q("/redirect/302", to=t.c + "/echo"))


@scenario()
def redirect_authorization_from_session_headers(c: Any, t: Tape) -> None:
    c.headers["Authorization"] = "Bearer session"
    t.send(c.get, q("/redirect/302", to="/echo"))
    t.send(c.get, q("/redirect/302", to=t.c + "/echo"))


@scenario(base="creds")
def redirect_authorization_from_base_url_credentials(c: Any, t: Tape) -> None:
    t.send(c.get, q("/redirect/302", to="/echo"))
    t.send(c.get, q("/redirect/302", to=t.c + "/echo"))


# == scenarios: params ============================================================================


@scenario()
def params_dict(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", params={"a": "1", "b": "two words", "c": "x&y=z"})


@scenario()
def params_list_of_tuples(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", params=[("a", "1"), ("a", "2"), ("b", "3")])


@scenario()
def params_str_and_bytes(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", params="a=1&b=c d")
    t.send(c.get, "/echo", params=b"x=1&y=2")


@scenario()
def params_none_value_dropped(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", params={"a": "1", "b": None, "c": ""})


@scenario()
def params_list_values(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", params={"a": ["1", "2"], "n": 3})


@scenario()
def params_on_a_url_with_a_query(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo?x=0", params={"a": "1"})
    t.send(c.get, "/echo?", params={"a": "1"})


@scenario()
def params_before_a_fragment(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo#frag", params={"a": "1"})


@scenario()
def params_non_ascii(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", params={"q": "café €", "ключ": "значение"})


@scenario()
def params_session_merged(c: Any, t: Tape) -> None:
    c.params = {"s": "1", "t": "2"}
    t.send(c.get, "/echo", params={"r": "3"})
    t.send(c.get, "/echo")


@scenario()
def params_session_removed_by_none(c: Any, t: Tape) -> None:
    c.params = {"s": "1", "t": "2"}
    t.send(c.get, "/echo", params={"s": None})


# == scenarios: bodies ============================================================================


@scenario()
def body_data_dict(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", data={"a": "1", "b": "two words", "c": "é"})


@scenario()
def body_data_list_of_tuples(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", data=[("a", "1"), ("a", "2")])


@scenario()
def body_data_dict_none_dropped_and_lists(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", data={"a": "1", "b": None, "c": ["x", "y"]})


@scenario()
def body_data_str(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", data="plain text")
    t.send(c.post, "/echo", data="café €")


@scenario()
def body_data_bytes(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", data=b"\x00\x01bytes")
    t.send(c.put, "/echo", data=b"")


@scenario()
def body_data_empty_dict(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", data={})


@scenario()
def body_file_like(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", data=io.BytesIO(b"from a file"))


@scenario()
def body_generator_is_chunked(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", data=(part for part in [b"one ", b"two ", b"three"]))


@scenario()
def body_json_values(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", json={"a": [1, 2.5, None, True], "é": "ü"})
    t.send(c.post, "/echo", json=[1, 2])
    t.send(c.post, "/echo", json="text")
    t.send(c.put, "/echo", json=0)


@scenario()
def body_json_none_is_no_body(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", json=None)


@scenario()
def body_json_and_data_data_wins(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", data={"d": "1"}, json={"j": 1})
    t.send(c.post, "/echo", data="", json={"j": 1})  # empty data: the json is sent


@scenario()
def body_json_nan_is_invalid(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", json={"x": float("nan")})


@scenario()
def body_json_with_explicit_content_type(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", json={"a": 1}, headers={"content-type": "application/vnd.api+json"})


@scenario()
def body_json_with_explicit_accept(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", json={"a": 1}, headers={"Accept": "text/html"})


@scenario()
def body_none_content_length_per_method(c: Any, t: Tape) -> None:
    for verb in (c.post, c.put, c.patch, c.delete, c.options, c.get):
        t.send(verb, "/echo")


def _named(content: bytes, name: str) -> io.BytesIO:
    stream = io.BytesIO(content)
    stream.name = name
    return stream


@scenario()
def files_file_object(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", files={"upload": _named(b"file content", "/tmp/report.csv")})
    t.send(c.post, "/echo", files={"anonymous": io.BytesIO(b"no name")})


@scenario()
def files_name_and_content(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", files={"f": ("a.txt", b"bytes content")})
    t.send(c.post, "/echo", files={"f": ("a.txt", "str content")})


@scenario()
def files_with_content_type(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", files={"f": ("a.json", b"{}", "application/json")})


@scenario()
def files_with_part_headers(c: Any, t: Tape) -> None:
    t.send(
        c.post,
        "/echo",
        files={"f": ("a.bin", b"\x00\xff", "application/octet-stream", {"X-Part": "1"})},
    )


@scenario()
def files_several_with_data_fields(c: Any, t: Tape) -> None:
    t.send(
        c.post,
        "/echo",
        data={"field": "value", "multi": ["1", "2"]},
        files=[("f1", ("one.txt", b"1")), ("f2", ("two.txt", _named(b"2", "two.txt")))],
    )


@scenario()
def files_form_field_without_filename(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", files={"field": (None, "just a value"), "f": ("x.txt", b"x")})


# == scenarios: headers ===========================================================================


@scenario()
def headers_session_case_insensitive(c: Any, t: Tape) -> None:
    c.headers["X-A"] = "1"
    t.note("headers['x-a']", lambda: c.headers["x-a"])
    t.note("'X-a' in headers", lambda: "X-a" in c.headers)
    t.send(c.get, "/echo")


@scenario()
def headers_request_overrides_session_in_another_case(c: Any, t: Tape) -> None:
    c.headers["X-Token"] = "session"
    t.send(c.get, "/echo", headers={"x-token": "request"})
    t.send(c.get, "/echo")


@scenario()
def headers_none_removes_a_session_header(c: Any, t: Tape) -> None:
    c.headers["X-A"] = "1"
    t.send(c.get, "/echo", headers={"X-A": None})
    t.send(c.get, "/echo", headers={"accept": None})


@scenario()
def headers_none_removes_user_agent(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", headers={"User-Agent": None})


@scenario()
def headers_bytes_value(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", headers={"X-B": b"bytes value"})


@scenario()
def headers_invalid_newline(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", headers={"X-Bad": "a\r\nInjected: 1"})


@scenario()
def headers_invalid_leading_space(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", headers={"X-Bad": " leading"})


@scenario()
def headers_invalid_type(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", headers={"X-Bad": 1})


@scenario()
def headers_session_update(c: Any, t: Tape) -> None:
    c.headers.update({"X-U": "1", "accept": "text/html"})
    t.send(c.get, "/echo")
    t.note("headers['Accept']", lambda: c.headers["Accept"])


@scenario()
def headers_defaults_of_the_session(c: Any, t: Tape) -> None:
    t.note("headers['accept']", lambda: c.headers["accept"])
    t.note("headers['connection']", lambda: c.headers["connection"])
    t.send(c.get, "/echo")


# == scenarios: auth ==============================================================================


@scenario()
def auth_tuple(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", auth=("user", "pass"))


@scenario()
def auth_basic_object(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", auth=HTTPBasicAuth("user", "pass"))


@scenario()
def auth_digest(c: Any, t: Tape) -> None:
    t.send(c.get, "/digest-auth/user/pass", auth=HTTPDigestAuth("user", "pass"))
    t.send(c.get, "/digest-auth/user/pass", auth=HTTPDigestAuth("user", "wrong"))


class _TokenAuth(AuthBase):
    def __call__(self, request: Any) -> Any:
        request.headers["X-Token-Auth"] = "tok"
        return request


@scenario()
def auth_custom_authbase(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", auth=_TokenAuth())


@scenario()
def auth_plain_callable(c: Any, t: Tape) -> None:
    def sign(request: Any) -> Any:
        request.headers["X-Signed"] = request.method + " " + request.path_url
        return request

    t.send(c.post, "/echo", data="x", auth=sign)


@scenario()
def auth_session(c: Any, t: Tape) -> None:
    c.auth = ("user", "pass")
    t.send(c.get, "/echo")
    t.send(c.get, "/echo", auth=("other", "x"))  # the request's wins


@scenario()
def auth_wins_over_an_authorization_header(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", auth=("user", "pass"), headers={"Authorization": "Bearer x"})


@scenario()
def auth_non_ascii_latin1(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", auth=("usér", "pässwörd"))


@scenario()
def auth_non_latin1(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", auth=("user", "p€ss"))


@scenario(base="creds")
def auth_from_base_url_credentials(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo")
    t.send(c.get, "/echo", auth=("other", "x"))


@scenario()
def auth_from_credentials_in_the_request_url(c: Any, t: Tape) -> None:
    t.send(c.get, f"http://ann:s3cret@{netloc(t.a)}/echo")


# == scenarios: encoding and content =============================================================


@scenario()
def text_plain_without_charset(c: Any, t: Tape) -> None:
    t.send(c.get, q("/body", ct="text/plain", b="café"))


@scenario()
def text_charset_utf8(c: Any, t: Tape) -> None:
    t.send(c.get, q("/body", ct="text/html; charset=utf-8", b="café"))
    t.send(c.get, q("/body", ct='text/html; charset="UTF-8"', b="café"))


@scenario()
def json_without_charset(c: Any, t: Tape) -> None:
    t.send(c.get, q("/body", ct="application/json", b='{"k": "é"}'))


@scenario()
def unknown_charset(c: Any, t: Tape) -> None:
    t.send(c.get, q("/body", ct="text/plain; charset=x-klingon", b="café"))


@scenario()
def no_content_type(c: Any, t: Tape) -> None:
    t.send(c.get, q("/body", b="café au lait, naïve façade"))


@scenario()
def encoding_set_by_the_caller(c: Any, t: Tape) -> None:
    r = t.send(c.get, q("/body", ct="text/plain", b="café"))
    if r is not None:
        r.encoding = "utf-8"
        t.note("text after encoding = utf-8", lambda: r.text)


@scenario()
def gzip_and_deflate_bodies(c: Any, t: Tape) -> None:
    t.send(c.get, q("/gzip", enc="gzip", b="zipped"))
    t.send(c.get, q("/gzip", enc="deflate", b="deflated"))


@scenario()
def empty_and_binary_bodies(c: Any, t: Tape) -> None:
    t.send(c.get, "/body")
    t.send(c.get, q("/body", ct="application/octet-stream", hex="00ff10"))


@scenario()
def json_invalid(c: Any, t: Tape) -> None:
    t.send(c.get, q("/body", ct="application/json", b="{not json"))


# == scenarios: response.request =================================================================


@scenario()
def response_request_of_a_post(c: Any, t: Tape) -> None:
    t.send(c.post, "/echo", params={"p": "1"}, data={"a": "b"}, headers={"X-Req": "1"})


# == scenarios: hooks =============================================================================


def _recorder(seen: list) -> Callable[..., None]:
    def hook(response: Any, *args: Any, **kwargs: Any) -> None:
        seen.append((response.status_code, response.url, sorted(kwargs)))

    return hook


@scenario()
def hook_per_request(c: Any, t: Tape) -> None:
    seen: list = []
    t.send(c.get, "/echo", hooks={"response": _recorder(seen)})
    t.note("hook calls", lambda: seen)


@scenario()
def hook_on_the_session(c: Any, t: Tape) -> None:
    seen: list = []
    c.hooks["response"].append(_recorder(seen))
    t.send(c.get, "/echo")
    t.send(c.get, "/status/404")
    t.note("hook calls", lambda: seen)


@scenario()
def hook_called_for_each_redirect_hop(c: Any, t: Tape) -> None:
    seen: list = []
    t.send(c.get, "/redirect-chain/2", hooks={"response": [_recorder(seen), _recorder(seen)]})
    t.note("hook calls", lambda: seen)


@scenario()
def hook_returns_a_new_response(c: Any, t: Tape) -> None:
    def swap(response: Any, *args: Any, **kwargs: Any) -> Any:
        new = copy.copy(response)
        new.reason = "Swapped"
        return new

    t.send(c.get, "/echo", hooks={"response": swap})


# == scenarios: misuse ============================================================================


@scenario()
def misspelt_keyword(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo", param={"a": "1"})


@scenario(base="none")
def no_base_url_and_a_path(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo")


@scenario(base="none")
def ftp_url(c: Any, t: Tape) -> None:
    t.send(c.get, "ftp://127.0.0.1/file")


@scenario()
def ftp_url_with_a_base_url(c: Any, t: Tape) -> None:
    t.send(c.get, "ftp://127.0.0.1/file")


@scenario(base="none")
def url_without_a_host(c: Any, t: Tape) -> None:
    t.send(c.get, "http://")


@scenario()
def path_without_a_leading_slash(c: Any, t: Tape) -> None:
    t.send(c.get, "echo")


@scenario(base="path")
def base_url_with_a_path(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo")


@scenario(base="path/")
def base_url_with_a_path_and_slash(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo")


@scenario()
def absolute_url_in_capitals(c: Any, t: Tape) -> None:
    t.send(c.get, "HTTP://" + netloc(t.c) + "/echo")


@scenario()
def url_with_spaces_and_non_ascii(c: Any, t: Tape) -> None:
    t.send(c.get, "/a path/café?q=a b")


# == scenarios: streaming =========================================================================


@scenario()
def stream_iter_content(c: Any, t: Tape) -> None:
    r = t.open(c.get, "/stream?n=3", stream=True)
    if r is not None:
        t.note("iter_content(4)", lambda: list(r.iter_content(4)))
    t.send(c.get, "/echo")


@scenario()
def stream_iter_lines(c: Any, t: Tape) -> None:
    r = t.open(c.get, "/stream?n=4", stream=True)
    if r is not None:
        t.note("iter_lines()", lambda: list(r.iter_lines()))
    t.send(c.get, "/echo")


@scenario()
def stream_iter_content_decoded(c: Any, t: Tape) -> None:
    r = t.open(c.get, q("/body", ct="text/plain; charset=utf-8", b="é€ü"), stream=True)
    if r is not None:
        t.note("iter_content(1, decode_unicode=True)", lambda: list(r.iter_content(1, True)))


@scenario()
def stream_raw_read(c: Any, t: Tape) -> None:
    r = t.open(c.get, q("/body", ct="text/plain", b="0123456789"), stream=True)
    if r is not None:
        t.note("raw.read(4)", lambda: r.raw.read(4))
        t.note("raw.read()", lambda: r.raw.read())
    t.send(c.get, "/echo")


@scenario()
def stream_content_then_next_request(c: Any, t: Tape) -> None:
    r = t.open(c.get, "/stream?n=2", stream=True)
    if r is not None:
        t.note("content", lambda: r.content)
    t.send(c.get, "/echo")


@scenario()
def stream_left_unread(c: Any, t: Tape) -> None:
    t.open(c.get, "/stream?n=2", stream=True)
    t.send(c.get, "/echo")


# == scenarios: status codes ======================================================================


@scenario()
def status_204_and_304(c: Any, t: Tape) -> None:
    t.send(c.get, "/status/204")
    t.send(c.get, "/status/304")


@scenario()
def status_404_and_500(c: Any, t: Tape) -> None:
    t.send(c.get, "/status/404")
    t.send(c.post, "/status/500", data="x")


@scenario()
def status_head_404(c: Any, t: Tape) -> None:
    t.send(c.head, "/status/404")


@scenario()
def status_custom_reason(c: Any, t: Tape) -> None:
    t.send(c.get, q("/status/200", reason="Fine Thanks"))
    t.send(c.get, "/status/418")
    t.send(c.get, q("/status/599", reason="Odd"))


@scenario()
def links_header(c: Any, t: Tape) -> None:
    link = '<https://example.com/page2>; rel="next", <https://example.com/last>; rel="last"'
    t.send(c.get, q("/", h=f"Link: {link}"))


@scenario()
def repeated_response_headers(c: Any, t: Tape) -> None:
    t.send(c.get, q("/", h=["X-Multi: 1", "X-Multi: 2"]))


# == scenarios: connection errors =================================================================


@scenario(base="refused")
def connection_refused(c: Any, t: Tape) -> None:
    t.send(c.get, "/echo")
    t.send(c.post, "/echo", json={"a": 1})


@scenario()
def read_timeout(c: Any, t: Tape) -> None:
    t.send(c.get, "/stall", timeout=0.5)
    t.send(c.get, "/echo")  # the client recovers


@scenario()
def read_timeout_as_a_tuple(c: Any, t: Tape) -> None:
    t.send(c.get, "/stall", timeout=(5, 0.5))


@scenario()
def server_hangs_up(c: Any, t: Tape) -> None:
    t.send(c.get, "/hangup")
    t.send(c.get, "/echo")


@scenario()
def server_closes_after_answering(c: Any, t: Tape) -> None:
    t.send(c.get, q("/echo", close="1"))
    t.send(c.get, "/echo")


# -- the tests -----------------------------------------------------------------------------------


@pytest.mark.parametrize("client", list(CLIENTS))
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_parity(name: str, client: str, origins: Origins) -> None:
    kind, allow = CLIENTS[client]
    case = SCENARIOS[name]
    base_url = _base_url(case.base, origins)
    reference = LocustReference(base_url, allow)
    expected = play(reference, reference.events, case, origins, allow)
    events: list = []
    seen = play(_ours(kind, base_url, events), events, case, origins, allow)
    found = differences(expected, seen)
    if found:  # one line per difference; no traceback, which would only show this function
        pytest.fail(f"{len(found)} differences from requests:\n" + "\n".join(found), False)


def test_the_comparison_catches_a_difference(origins: Origins) -> None:
    """The reference against itself agrees; against itself with one header more, it does not."""

    class Sabotaged(LocustReference):
        def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            kwargs["headers"] = {**(kwargs.get("headers") or {}), "X-Extra": "1"}
            return super().request(method, url, *args, **kwargs)

    case = SCENARIOS["cookie_set_on_a_redirect_hop"]
    base_url = _base_url(case.base, origins)
    one, two, bad = (
        cls(base_url, HTTP_USER) for cls in (LocustReference, LocustReference, Sabotaged)
    )
    expected = play(one, one.events, case, origins, HTTP_USER)
    assert differences(expected, play(two, two.events, case, origins, HTTP_USER)) == []
    found = differences(expected, play(bad, bad.events, case, origins, HTTP_USER))
    assert any("server.a[1].headers.x-extra" in line for line in found), found


def test_fast_cookiejar_is_its_cookies(origins: Origins) -> None:
    client = FastHttpSession(base_url=origins["a"].url, request_event=EventHook())
    try:
        assert client.cookiejar is client.cookies
    finally:
        client.close()
