"""The one session layer of both HTTP clients: requests' semantics, Locust's recording.

``Session`` is what ``HttpUser.client`` and ``FastHttpUser.client`` are: a
``requests.Session`` in everything a locustfile touches (URL joining as Locust joins it,
params, headers, cookies in requests' jar, auth, hooks, proxies, TLS options, redirects by
requests' rules with credentials stripped across origins), plus Locust's ``name=``,
``catch_response``, ``context`` and the request event. Where requests has the rule, its own
code applies it: ``PreparedRequest`` prepares a request, ``resolve_redirects`` the next hop of
a redirect, ``merge_environment_settings`` the proxies and CA bundle of the environment, its
auth objects and hooks run as they run there. The two clients differ only in their transport
(``_transport.Transport``): urllib3 under HttpUser, the lean httptools client under
FastHttpUser.

Connection errors, timeouts and garbage from the server never raise into user code: as in
Locust, the call returns a response with ``status_code`` 0 and ``error`` set (requests'
exception for it), recorded as a failure.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Generator, Mapping
from contextlib import contextmanager
from typing import Any, ClassVar

import requests
from gevent import GreenletExit
from requests.auth import HTTPBasicAuth
from requests.cookies import MockRequest, MockResponse, RequestsCookieJar
from requests.hooks import default_hooks, dispatch_hook
from requests.models import PreparedRequest
from requests.sessions import merge_hooks
from requests.structures import CaseInsensitiveDict

from mpswarm._version import __version__
from mpswarm.http import _prepare, _settings
from mpswarm.http._errors import Interrupted, RedirectLimit, scrubbed
from mpswarm.http._limits import MAX_BODY_SIZE, check_body_size
from mpswarm.http._prepare import ABSOLUTE, Route
from mpswarm.http._recording import CatchReport, Recorder, announced
from mpswarm.http._settings import Settings
from mpswarm.http._transport import Options, Outgoing, Transport
from mpswarm.http.response import Response, ResponseContextManager, Sent, failure_of
from mpswarm.stats import in_flight

_now = time.perf_counter

#: The User-Agent both clients send: the tool that sends the load says its name.
USER_AGENT = f"mpswarm/{__version__}"

_NO_ADAPTERS = (
    "mpswarm's HTTP clients send through their own transport: requests' adapters "
    "(client.mount, retries on an HTTPAdapter) are not used; retry in the task instead"
)


class SessionHeaders(CaseInsensitiveDict):
    """requests' CaseInsensitiveDict, counting its changes (so the header lines made of it are
    made again only when it changed)."""

    version = 0

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self.version += 1

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.version += 1


class Session(requests.Session):
    """A user's HTTP session: ``requests.Session``'s API and behaviour, each request recorded.

    Its settings are requests.Session's (``headers``, ``cookies``, ``auth``, ``params``,
    ``hooks``, ``proxies``, ``verify``, ``cert``, ``stream``, ``max_redirects``,
    ``trust_env``), each made for this session only once it is first read or set: an idle
    user pays nothing for a setting it leaves at its default.

    Args:
        base_url: the user's host; a URL not starting with http:// or https:// is appended to
            it (Locust's rule). Credentials in it (``http://user:password@host``) are sent as
            basic auth, as Locust does, and left out of the URLs requested and reported.
        request_event: the event hook fired once for every request.
        user: the User owning the session (for its context and stop handling), or None.
        max_body_size: the cap on a response body (default ``max_body_size``, 32 MiB).
        insecure: verify no TLS certificate (see ``insecure``).

    Attributes:
        max_body_size: the cap on a (decoded) response body in bytes; a larger body is a
            failed request. One request can pass its own; ``stream=True`` reads past it.
        request_name: the name requests are recorded under when they give none
            (``rename_request``).
        insecure: verify no TLS certificate, whatever ``verify`` and the environment say
            (``--insecure``): requests lets ``REQUESTS_CA_BUNDLE`` override a session's
            ``verify = False``, which this is not.
    """

    # requests.Session's settings, as class defaults: nothing per idle user.
    auth: Any = None
    stream = False
    verify: bool | str = True
    cert: Any = None
    max_redirects = 30  # requests' DEFAULT_REDIRECT_LIMIT, and Locust's for both users
    trust_env = True
    max_body_size = MAX_BODY_SIZE
    request_name: str | None = None
    insecure = False

    #: The headers a new session starts with (requests' defaults; the transport's codings).
    default_headers: ClassVar[Mapping[str, str]]
    #: The header lines of ``default_headers``.
    _default_lines: ClassVar[str]
    #: Header lines the transport's library adds on the wire when the request has no such
    #: header (urllib3 and http.client: a User-Agent, ``Accept-Encoding: identity``).
    _wire_defaults: ClassVar[tuple[tuple[str, str], ...]] = ()
    #: Whether ``json=`` also sends ``Accept: application/json`` (FastHttpUser, in Locust).
    _json_accepts = False
    #: ``response.text`` without a response ("" for HttpUser, None for FastHttpUser).
    _no_text: str | None = ""
    #: Timeouts when a request gives none: (connect, read).
    _timeouts: tuple[float | None, float | None] = (None, None)

    _headers: Any = None
    _jar: Any = None
    _params: Any = None
    _proxies: Any = None
    _hooks: Any = None
    _lines: tuple[Any, Any, str | None] | None = None  # (headers, version, their lines)
    _profile: Any = None  # what plans are made for (``_settings.profile_of``), at first use
    _transport: Transport

    def __init__(
        self,
        base_url: str,
        request_event: Any,
        user: Any = None,
        max_body_size: int | None = None,
        insecure: bool = False,
    ) -> None:
        # requests.Session.__init__ is not called: its adapters and pools would cost every
        # user kilobytes, and the transport is this session's own.
        if max_body_size is not None and max_body_size != self.max_body_size:
            self.max_body_size = check_body_size(max_body_size, type(self).__name__)
        base_url, credentials = split_credentials(base_url or "")
        self.base_url = base_url
        if credentials is not None:
            self.auth = HTTPBasicAuth(*credentials)
        self.request_event = request_event
        self.user = user
        if insecure:
            self.insecure = True

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in _PROFILED:
            super().__setattr__("_profile", None)  # plans are looked up under new settings

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "default_headers" in cls.__dict__:
            cls._default_lines = _prepare.header_lines(cls.default_headers)

    # -- requests.Session's settings, made on first use --------------------------------------
    @property
    def headers(self) -> CaseInsensitiveDict:
        """Headers sent with every request (requests' defaults at first)."""
        headers = self._headers
        if headers is None:
            headers = self._headers = SessionHeaders(self.default_headers)
        return headers

    @headers.setter
    def headers(self, value: Any) -> None:
        self._headers = value

    @property
    def cookies(self) -> RequestsCookieJar:
        """The session's cookie jar (requests' ``RequestsCookieJar``)."""
        jar = self._jar
        if jar is None:
            jar = self._jar = RequestsCookieJar()
        return jar

    @cookies.setter
    def cookies(self, value: Any) -> None:
        self._jar = value

    @property
    def params(self) -> Any:
        """Query parameters added to every request."""
        if self._params is None:
            self._params = {}
        return self._params

    @params.setter
    def params(self, value: Any) -> None:
        self._params = value

    @property
    def proxies(self) -> Any:
        """Proxies by scheme (or scheme and host), as requests takes them."""
        if self._proxies is None:
            self._proxies = {}
        return self._proxies

    @proxies.setter
    def proxies(self, value: Any) -> None:
        self._proxies = value

    @property
    def hooks(self) -> Any:
        """Event hooks: ``{"response": [callables]}``."""
        if self._hooks is None:
            self._hooks = default_hooks()
        return self._hooks

    @hooks.setter
    def hooks(self, value: Any) -> None:
        self._hooks = value

    def mount(self, prefix: str, adapter: Any) -> None:
        """requests' adapters are not used: mpswarm's transport sends every request.

        Raises:
            NotImplementedError: always, so an adapter (retries, a custom transport) is never
                silently ignored.
        """
        raise NotImplementedError(_NO_ADAPTERS)

    def get_adapter(self, url: str) -> Any:
        """Not used (see ``mount``).

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError(_NO_ADAPTERS)

    def send(self, request: Any, **kwargs: Any) -> Any:
        """Not available: send through ``request()`` (or the verbs), which record.

        Raises:
            NotImplementedError: always.
        """
        raise NotImplementedError(
            "Session.send(prepared) is not available in mpswarm: call client.request(...) or "
            "client.get/post/..., which record the request"
        )

    def close(self) -> None:
        """Close the session's connections (not those it shares with other sessions)."""
        self._transport.close()

    @contextmanager
    def rename_request(self, name: str) -> Generator[None, None, None]:
        """Record the requests made inside the ``with`` block under ``name`` (Locust's)."""
        self.request_name = name
        try:
            yield
        finally:
            self.request_name = None

    # -- requests' verbs, with Locust's keywords ---------------------------------------------
    # (A call without keywords goes on without them: binding a dict of keywords to
    # ``request``'s twenty parameters costs a plain GET about a microsecond.)
    def get(self, url: str, params: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """Send a GET request."""
        if not kwargs and params is None:
            return self.request("GET", url)
        kwargs.setdefault("allow_redirects", True)
        return self.request("GET", url, params=params, **kwargs)

    def options(self, url: str, **kwargs: Any) -> Any:  # type: ignore[override]
        """Send an OPTIONS request."""
        kwargs.setdefault("allow_redirects", True)
        return self.request("OPTIONS", url, **kwargs)

    def head(self, url: str, **kwargs: Any) -> Any:  # type: ignore[override]
        """Send a HEAD request (redirects not followed unless asked, as in requests)."""
        kwargs.setdefault("allow_redirects", False)
        return self.request("HEAD", url, **kwargs)

    def post(self, url: str, data: Any = None, json: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """Send a POST request."""
        if not kwargs and data is None and json is None:
            return self.request("POST", url)
        return self.request("POST", url, data=data, json=json, **kwargs)

    def put(self, url: str, data: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """Send a PUT request."""
        return self.request("PUT", url, data=data, **kwargs)

    def patch(self, url: str, data: Any = None, **kwargs: Any) -> Any:  # type: ignore[override]
        """Send a PATCH request."""
        return self.request("PATCH", url, data=data, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:  # type: ignore[override]
        """Send a DELETE request."""
        return self.request("DELETE", url, **kwargs)

    # -- the one request path ----------------------------------------------------------------
    def request(  # type: ignore[override]
        self,
        method: str,
        url: str,
        name: str | None = None,
        catch_response: bool = False,
        context: Mapping[str, Any] | None = None,
        *,
        params: Any = None,
        data: Any = None,
        headers: Any = None,
        cookies: Any = None,
        files: Any = None,
        auth: Any = None,
        timeout: Any = None,
        allow_redirects: bool = True,
        proxies: Any = None,
        hooks: Any = None,
        stream: bool | None = None,
        verify: Any = None,
        cert: Any = None,
        json: Any = None,
        max_body_size: int | None = None,
    ) -> Any:
        """Send a request as ``requests.Session.request`` does, and record it.

        Args:
            method: HTTP method.
            url: a full http(s) URL, or what is appended to ``base_url``.
            name: the name the request is recorded under (default: the first URL's path and
                query, as in Locust).
            catch_response: return a context manager that decides success or failure.
            context: extra data passed to request event listeners.
            params, data, headers, cookies, files, auth, timeout, allow_redirects, proxies,
                hooks, stream, verify, cert, json: as ``requests.Session.request``.
            max_body_size: the cap on this response's body (default: the session's).

        Returns:
            A Response (or ResponseContextManager with ``catch_response``).

        Raises:
            MissingSchema, InvalidSchema, InvalidURL: the URL cannot be requested (as in
                Locust, raised, not recorded).
            TypeError: an argument requests does not take.
        """
        if isinstance(url, bytes):
            url = url.decode("utf-8")
        if url[:1] == "/":  # a path (most calls): appended without the regex's match
            full_url = f"{self.base_url}{url}"
        else:
            full_url = url if ABSOLUTE.match(url) else f"{self.base_url}{url}"
        method = method.upper()
        user = self.user
        if user is None:
            ctx = dict(context or {})
        else:  # Locust's merge: a copy, whatever context() returns
            ctx = {**user.context(), **context} if context else {**user.context()}
        recorder = Recorder(self.request_event, method, name or self.request_name, full_url, ctx)
        limit = self.max_body_size if max_body_size is None else max_body_size
        control = user._mpswarm if user is not None else None
        if control is not None:
            if control.stop_after_request:
                raise GreenletExit()  # being stopped: send nothing new
            control.in_request += 1
        flight = in_flight.counter
        flight[0] += 1
        try:
            response = self._send(
                recorder, method, url, full_url, params, data, headers, cookies, files, auth,
                timeout, allow_redirects, proxies, hooks,
                self.stream if stream is None else stream, verify, cert, json, limit,
            )  # fmt: skip
        except GreenletExit:
            # Killed mid-request (a stop past its grace time): the request was sent, so it is
            # recorded, as a failure, before the user goes away.
            recorder.fire(None, Interrupted(), recorder.elapsed_ms())
            raise
        finally:
            flight[0] -= 1  # recorded just below, with no switch between
            if control is not None:
                control.in_request -= 1
        elapsed_ms = (_now() - recorder.start) * 1000.0
        content = response._content
        recorder.length = len(content) if content is not None else announced(response)
        if catch_response:
            return ResponseContextManager.wrap(response, CatchReport(recorder, elapsed_ms, user))
        response._recorder = recorder  # for request_meta: one attribute, built only when read
        if response.error is None and not 400 <= response.status_code < 600:
            recorder.fire(response, None, elapsed_ms)
        else:
            recorder.fire(response, failure_of(response, recorder.name), elapsed_ms)
        if control is not None and control.stop_after_request:
            raise GreenletExit()
        return response

    def _send(
        self,
        recorder: Recorder,
        method: str,
        given_url: str,
        url: str,
        params: Any,
        data: Any,
        headers: Any,
        cookies: Any,
        files: Any,
        auth: Any,
        timeout: Any,
        allow_redirects: bool,
        proxies: Any,
        hooks: Any,
        stream: bool,
        verify: Any,
        cert: Any,
        json: Any,
        limit: int,
    ) -> Response:
        """Prepare, send and follow redirects; a failure becomes a failed response."""
        sent: Sent | None = None
        try:
            plan = None
            if (
                params is None
                and data is None
                and json is None
                and files is None
                and headers is None
                and cookies is None
                and auth is None
                and hooks is None
                and proxies is None
                and verify is None
                and cert is None
                and timeout is None
                and self._headers is None
                and self._hooks is None
                and self.auth is None
                and not self._params
                and not self._proxies
                and (self._jar is None or not self._jar)
            ):
                plan = _PLANS.get((method, url, self._profile), _UNPLANNED)
                if plan is _UNPLANNED:
                    plan = self._plan(method, url)
            if plan is not None:
                route, sent, found, outgoing = plan
            else:
                route, sent, found, outgoing = self._made(
                    method, url, params, data, headers, cookies, files, auth, hooks, proxies,
                    verify, cert, timeout, json,
                )  # fmt: skip
            if recorder.name is None:
                recorder.name = route.target
            recorder.meta_url = route.url if route.plain else _without_auth(route.url)
            response = self._transport.exchange(outgoing, limit, stream)
            response._sent = sent
            response._session = self
            if (
                sent.hooks is not None
                or sent.prepared is not None
                or response.headers.set_cookie is not False
            ):
                response = self._received(response, sent, timeout, found, stream)
            if response.status_code in _REDIRECTS and response.is_redirect:
                if allow_redirects:
                    response = self._follow(
                        response, found, proxies, verify, cert, timeout, limit, stream
                    )
                else:
                    response._next = self._next_hop(response, found)
            return response
        except (requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema,
                requests.exceptions.InvalidURL):  # fmt: skip
            raise  # Locust raises these too: the locustfile's mistake, not the server's
        except requests.RequestException as exc:
            return self._failed(recorder, given_url, scrubbed(exc), sent)

    def _profiled(self) -> _settings.Profile:
        """The profile this session's requests are sent under (found at its first request and
        again after a setting it depends on changed)."""
        profile = self._profile
        if profile is None:
            profile = self._profile = _settings.profile_of(self)
        return profile

    def _plan(self, method: str, url: str) -> _Plan | None:
        """What a request that carries nothing of its own (a URL alone, on a session with
        requests' default headers and no cookie) sends, and how: the same for every such
        request of a method to a URL on sessions with the same settings, so made once (None
        where the URL or the environment asks for more: credentials, a proxy)."""
        profile = self._profiled()
        key = (method, url, profile)
        plan = _PLANS.get(key, _UNPLANNED)
        if plan is _UNPLANNED:
            route = self._route(url)
            plan = None
            if route.plain and not _settings.netrc_auth(route.origin, profile):
                found, options = _settings.for_request(self, profile, route, None, None, None, None)
                if options.proxy is None:
                    lines = self._default_lines
                    sent_headers = self.default_headers
                    if method not in ("GET", "HEAD"):  # requests' Content-Length: 0
                        sent_headers = {**sent_headers, "Content-Length": "0"}
                        lines += "Content-Length: 0\r\n"
                    head = _prepare.head(method, route.target, route.host, lines)
                    sent = Sent(method, route.url, sent_headers, None)
                    outgoing = Outgoing(method, route.url, route.origin, head, None, options)
                    plan = (route, sent, found, outgoing)
            if len(_PLANS) < 4096:  # unique URLs must not grow this without end
                _PLANS[key] = plan
        return plan

    def _made(
        self,
        method: str,
        url: str,
        params: Any,
        data: Any,
        headers: Any,
        cookies: Any,
        files: Any,
        auth: Any,
        hooks: Any,
        proxies: Any,
        verify: Any,
        cert: Any,
        timeout: Any,
        json: Any,
    ) -> tuple[Route, Sent, Settings, Outgoing]:
        """Any other request: the session's headers and cookies, or requests' own
        preparation of what the request carries."""
        route = self._route(url)
        profile = self._profiled()
        plain = None
        if (
            params is None
            and data is None
            and json is None
            and files is None
            and headers is None
            and cookies is None
            and auth is None
            and self.auth is None
            and route.plain
            and not self._params
            and not _settings.netrc_auth(route.origin, profile)
        ):
            plain = self._plain(method, route, hooks)
        if plain is not None:
            sent, lines = plain
            body = None
        else:
            prepared = self._prepare(
                method, route.url, params, data, headers, cookies, files, auth, json, hooks
            )
            route = _prepare.route_of(prepared.url)  # type: ignore[arg-type]
            sent = Sent(method, prepared.url, prepared.headers, prepared.body, prepared)  # type: ignore[arg-type]
            lines, body = self._lines_of(prepared)
        found, options = _settings.for_request(self, profile, route, proxies, verify, cert, timeout)
        return route, sent, found, self._outgoing(method, route, sent, lines, body, options)

    def _failed(
        self, recorder: Recorder, given_url: str, error: Any, sent: Sent | None
    ) -> Response:
        """The response of a request that got none: Locust's (status 0, ``error`` set, no url
        nor reason; ``request`` the request it was, when it got that far)."""
        if recorder.name is None:
            recorder.name = given_url  # as Locust names a request that was never prepared
        failed = Response(content=None, url=None, error=error)  # type: ignore[arg-type]
        failed.reason = None  # type: ignore[assignment]
        failed._session = self
        last = getattr(error, "response", None)
        if isinstance(error, RedirectLimit) and isinstance(last, Response):
            sent = last._sent  # requests' TooManyRedirects carries the last hop's request
        elif sent is None and isinstance(getattr(error, "request", None), PreparedRequest):
            prepared = error.request  # what requests was preparing (InvalidJSONError's)
            sent = Sent(prepared.method, prepared.url, prepared.headers, prepared.body, prepared)
        failed._sent = sent
        return failed

    def _route(self, url: str) -> Route:
        try:
            return _prepare.route(url)  # raises MissingSchema, InvalidURL, InvalidSchema
        except requests.exceptions.MissingSchema as exc:
            if self.base_url:
                raise
            raise requests.exceptions.MissingSchema(
                f"{exc} (give the user a host: -H http://host:port, or host on its class)"
            ) from None

    # -- preparing ---------------------------------------------------------------------------
    def _plain(self, method: str, route: Route, hooks: Any) -> tuple[Sent, str] | None:
        """A request that carries nothing of its own: the session's headers (their lines made
        once per change), its cookies, Content-Length 0 where requests sends it; None where
        requests' own preparation must decide (session headers naming a Cookie, a
        Content-Length or a Host)."""
        headers = self._headers
        if headers is None:
            sent_headers: Any = self.default_headers
            lines = self._default_lines
        else:
            found = _prepare.session_lines(self, headers)
            if found is None:
                return None
            sent_headers, lines = headers, found
        jar = self._jar
        if jar is not None and len(jar):
            cookie = _prepare.cookie_header(jar, route.url, sent_headers)
            if cookie is not None:
                sent_headers = {**sent_headers, "Cookie": cookie}
                lines += f"Cookie: {cookie}\r\n"
        if method not in ("GET", "HEAD"):
            sent_headers = {**sent_headers, "Content-Length": "0"}
            lines += "Content-Length: 0\r\n"
        if hooks is not None:
            hooks = merge_hooks(requests.Request(hooks=hooks).hooks, self._hooks)
        else:
            hooks = self._hooks
        return Sent(method, route.url, sent_headers, None, hooks=hooks), lines

    def _prepare(
        self,
        method: str,
        url: str,
        params: Any,
        data: Any,
        headers: Any,
        cookies: Any,
        files: Any,
        auth: Any,
        json: Any,
        hooks: Any,
    ) -> PreparedRequest:
        """``requests.Session.prepare_request``, reading the session's settings without making
        them (an unset setting is its default)."""
        if self._json_accepts and json is not None and not data:
            headers = {"Accept": "application/json", **(headers or {})}
        return _prepare.prepared(
            method=method,
            url=url,
            params=params,
            data=data,
            headers=headers,
            cookies=cookies,
            files=files,
            auth=auth,
            json=json,
            hooks=hooks,
            session_headers=self._headers if self._headers is not None else self.default_headers,
            session_jar=self._jar,
            session_params=self._params,
            session_auth=self.auth,
            session_hooks=self._hooks,
            trust_env=self.trust_env,
        )

    def _lines_of(self, prepared: PreparedRequest) -> tuple[str, Any]:
        """The header lines and body of a request requests prepared, with what the transport's
        library would add on the wire (urllib3's Content-Length 0 for a method that expects a
        body, its User-Agent)."""
        return _prepare.lines_of(prepared, self._wire_defaults)

    # -- sending -----------------------------------------------------------------------------
    def _outgoing(
        self, method: str, route: Route, sent: Sent, lines: str, body: Any, options: Options
    ) -> Outgoing:
        """What the transport sends: the head (a proxy's absolute-form target and
        ``Proxy-Authorization`` for an http:// URL sent through one) and the body."""
        if options.proxy is None and sent.prepared is None:
            head = _prepare.plain_head(method, route, lines)
        else:
            target, host = route.target, route.host
            if options.proxy is not None and route.origin[0] == "http":
                target, host = _prepare.proxy_target(route.url)
                if options.proxy_headers and "proxy-authorization:" not in lines.lower():
                    lines += "".join(f"{k}: {v}\r\n" for k, v in options.proxy_headers.items())
            if sent.prepared is not None and "host" in sent.prepared.headers:
                host = ""  # given by the caller: http.client adds none of its own
            head = _prepare.head(method, target, host, lines)
        return Outgoing(method, route.url, route.origin, head, body, options)

    def _exchange(self, sent: Sent, outgoing: Outgoing, limit: int, stream: bool) -> Response:
        """One request through the transport."""
        response = self._transport.exchange(outgoing, limit, stream)
        response._sent = sent
        response._session = self
        return response

    def _received(
        self, response: Response, sent: Sent, timeout: Any, found: Settings, stream: bool
    ) -> Response:
        """What requests does with each response as it arrives: its request's hooks, then its
        cookies into the session's jar."""
        hooks = sent.hooks if sent.prepared is None else sent.prepared.hooks
        if hooks and hooks.get("response"):
            response = dispatch_hook(  # type: ignore[assignment]
                "response", hooks, response,  # type: ignore[arg-type]
                stream=stream, timeout=timeout, verify=found.verify, proxies=found.proxies,
                cert=found.cert,
            )  # fmt: skip
        headers = response.headers
        if getattr(headers, "set_cookie", None) is not False and "Set-Cookie" in headers:
            self.cookies.extract_cookies(
                MockResponse(response.headers),  # type: ignore[arg-type]
                MockRequest(_prepare.Probe(sent.url, sent.headers)),  # type: ignore[arg-type]
            )
        return response

    def _follow(
        self,
        response: Response,
        found: Settings,
        proxies: Any,
        verify: Any,
        cert: Any,
        timeout: Any,
        limit: int,
        stream: bool,
    ) -> Response:
        """Follow redirects as requests does: its limit (``max_redirects``), its method
        rewriting, its rules for cookies, credentials (stripped across origins) and
        proxies, each hop made by requests' own ``resolve_redirects``."""
        history: list[Response] = []
        while response.is_redirect:
            if len(history) >= self.max_redirects:
                raise RedirectLimit(
                    f"TooManyRedirects: Exceeded {self.max_redirects} redirects.",
                    response=response,
                )
            hop = self._next_hop(response, found)
            history.append(response)
            route = _prepare.route_of(hop.url)  # type: ignore[arg-type]
            found, options = _settings.for_request(
                self, self._profiled(), route, proxies, verify, cert, timeout
            )
            lines, body = self._lines_of(hop)
            sent = Sent(hop.method, hop.url, hop.headers, hop.body, hop)  # type: ignore[arg-type]
            outgoing = self._outgoing(hop.method, route, sent, lines, body, options)  # type: ignore[arg-type]
            response = self._exchange(sent, outgoing, limit, stream)
            response = self._received(response, sent, timeout, found, stream)
        for hop_response in history:
            hop_response.history = []
        response.history = history
        return response

    def _next_hop(self, response: Response, found: Settings) -> PreparedRequest:
        """The request requests would send next for a redirect (``resolve_redirects`` with
        ``yield_requests``: the URL, method, body, cookies, auth and proxy headers of the
        next hop, by requests' rules)."""
        prepared = response.request
        if prepared is None:
            raise requests.RequestException("a redirect without the request that led to it")
        hops = self.resolve_redirects(
            response,  # type: ignore[arg-type]
            prepared,
            yield_requests=True,
            proxies=dict(found.proxies),
        )
        return next(hops)  # type: ignore[return-value]

    def _adapter_send(
        self,
        request: PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> Response:
        """``response.connection.send``: what requests' adapter does, one request sent as it
        is (no hooks, no cookies, no redirects), for auth handlers (HTTPDigestAuth) that send
        their answer to a challenge themselves."""
        route = _prepare.route_of(request.url)  # type: ignore[arg-type]
        proxies = dict(proxies or {})
        found = Settings(proxies, _settings.select_proxy(route.url, proxies), verify, cert)
        options = _settings.options(timeout, self._timeouts, found)
        lines, body = self._lines_of(request)
        sent = Sent(request.method, request.url, request.headers, request.body, request)  # type: ignore[arg-type]
        outgoing = self._outgoing(request.method, route, sent, lines, body, options)  # type: ignore[arg-type]
        return self._exchange(sent, outgoing, self.max_body_size, stream)


_REDIRECTS = frozenset((301, 302, 303, 307, 308))
_Plan = tuple[Route, Sent, Settings, Outgoing]
#: Plans of plain requests by (method, URL, session profile); None where a URL has none.
_PLANS: dict[tuple[str, str, Any], _Plan | None] = {}
_UNPLANNED: Any = object()
#: A session's settings that a plan depends on (setting one makes its profile anew).
_PROFILED = frozenset(("verify", "cert", "trust_env", "insecure", "_timeouts"))


def _without_auth(url: str) -> str:
    """``url`` without a ``user:password@`` part (a request's URL as reports show it)."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if not sep or "@" not in authority:
        return url
    return f"{scheme}://{authority.rpartition('@')[2]}{slash}{path}"


@functools.lru_cache(maxsize=64)  # once per host, not per user
def split_credentials(base_url: str) -> tuple[str, tuple[str, str] | None]:
    """A host URL without its ``user:password@`` part, and those credentials (or None).

    As Locust's clients, both a user name and a password are needed; they are percent-decoded
    (``p%40ss`` is ``p@ss``), as requests and curl read them.
    """
    from urllib.parse import unquote, urlsplit, urlunsplit

    if not base_url or "@" not in base_url:
        return base_url, None
    parts = urlsplit(base_url)
    if not (parts.username and parts.password):
        return base_url, None
    host = parts.netloc.rsplit("@", 1)[1]
    bare = urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment))
    return bare, (unquote(parts.username), unquote(parts.password))
