"""The web UI over HTTP: one self-contained page, a JSON API, downloads; who may use them.

Rules, checked on every request:

- The ``Host`` header must be one of the names the UI is served as, and an ``Origin`` header,
  when there is one, must be one of them too (:mod:`mpswarm.web.hosts`): anything else gets
  421 (Host) or 403 (Origin) and a short text, never the page, its token or data. This is
  what stops DNS rebinding: a page elsewhere whose name now points at 127.0.0.1.
- Bound to loopback (the default), anyone on this machine may use it. Bound to another
  address, it requires ``--web-auth user:password`` (HTTP Basic), or else a token generated
  at start and printed in the URL: opening that URL once sets a cookie.
- State-changing requests are POSTs that carry the page's CSRF token in an ``X-Mpswarm-Csrf``
  header. A page from another site cannot read the token (no CORS headers are ever sent) nor
  send a custom header without a preflight that is never allowed.
- The page loads nothing from the network: its script and styles are inline.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
from collections.abc import Callable, Iterable
from http.cookies import SimpleCookie
from importlib import resources
from typing import Any
from urllib.parse import parse_qs

from mpswarm.exceptions import UsageError
from mpswarm.web.control import DOWNLOADS, Controller, parse_run_request
from mpswarm.web.hosts import AllowedHosts
from mpswarm.web.listen import BasicAuth

logger = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
_COOKIE = "mpswarm_token"
_MISDIRECTED = (
    b"mpswarm: this web UI is not served under that Host name. Open the URL mpswarm printed,"
    b" or name this host with --web-allowed-host.\n"
)
_LOGGED_HOSTS = 16  # refused Host values logged once each, up to this many (a flood stays quiet)
_SECURITY_HEADERS = [
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'; "
        "img-src data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'",
    ),
]


class WebApp:
    """The WSGI application.

    Args:
        controller: what the page steers.
        hosts: the ``Host`` / ``Origin`` values it answers; every other request is refused.
        basic_auth: the ``--web-auth`` credentials every request must carry
            (``listen.BasicAuth``: rate-limited per client address), or None.
        token: a secret required from every request (cookie, ``?token=`` or Bearer), or None.
    """

    def __init__(
        self,
        controller: Controller,
        hosts: AllowedHosts,
        basic_auth: BasicAuth | None = None,
        token: str | None = None,
    ) -> None:
        self.controller = controller
        self.hosts = hosts
        self._refused_hosts: set[str] = set()
        self.basic_auth = basic_auth
        self.token = token
        self.csrf = secrets.token_urlsafe(24)
        from mpswarm.report.charts import DRAW_SCRIPT

        page = resources.files("mpswarm.web").joinpath("page.html").read_text("utf-8")
        self._page = page.replace("__DRAW_SCRIPT__", DRAW_SCRIPT)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO") or "/"
        misdirected = self._check_host(environ)
        if misdirected is not None:
            return misdirected(start_response)
        query = parse_qs(environ.get("QUERY_STRING", ""))
        if self.token is not None and query.get("token") == [self.token] and path == "/":
            cookie = f"{_COOKIE}={self.token}; Path=/; HttpOnly; SameSite=Strict"
            return _reply(start_response, "303 See Other", b"", "text/plain", [
                ("Location", "/"), ("Set-Cookie", cookie),
            ])  # fmt: skip
        denied = self._authenticate(environ)
        if denied is not None:
            return denied(start_response)
        try:
            if method == "GET":
                return self._get(path, start_response)
            if method == "POST":
                refused = self._check_csrf(environ)
                if refused:
                    return _json(start_response, "403 Forbidden", {"error": refused})
                return self._post(path, _body(environ), start_response)
            return _json(start_response, "405 Method Not Allowed", {"error": "GET or POST"})
        except UsageError as exc:
            return _json(start_response, "400 Bad Request", {"error": str(exc)})
        except Exception:
            logger.exception("the web UI failed to answer %s %s", method, path)
            return _json(start_response, "500 Internal Server Error", {"error": "see the log"})

    # -- who may ask -----------------------------------------------------------------------------
    def _check_host(self, environ: dict[str, Any]) -> Callable[[StartResponse], Any] | None:
        """A refusal when ``Host`` or ``Origin`` is not this UI (before anything else is read)."""
        host = environ.get("HTTP_HOST")
        local = environ.get("SERVER_ADDR")  # set by serve.py's handler: the socket's own address
        if not self.hosts.allows_host(host, local):
            if len(self._refused_hosts) < _LOGGED_HOSTS and repr(host) not in self._refused_hosts:
                self._refused_hosts.add(repr(host))
                logger.warning(
                    "web UI: refused a request for Host %r (accepted: %s; add names with "
                    "--web-allowed-host)", host, ", ".join(self.hosts.names()),
                )  # fmt: skip
            return lambda start: _reply(
                start, "421 Misdirected Request", _MISDIRECTED, "text/plain; charset=utf-8"
            )
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and not self.hosts.allows_origin(origin, local):
            error = {"error": "cross-site request refused: its Origin is not this web UI"}
            return lambda start: _json(start, "403 Forbidden", error)
        return None

    def _authenticate(self, environ: dict[str, Any]) -> Callable[[StartResponse], Any] | None:
        if self.basic_auth is not None:
            refused = self.basic_auth.refusal(environ)
            if refused is not None:
                status, body, headers = refused
                return lambda start: _reply(start, status, body, "text/plain", headers)
        if self.token is not None:
            cookies = SimpleCookie(environ.get("HTTP_COOKIE", ""))
            given = cookies[_COOKIE].value if _COOKIE in cookies else ""
            bearer = environ.get("HTTP_AUTHORIZATION", "")
            if bearer.startswith("Bearer "):
                given = bearer[len("Bearer ") :]
            if not hmac.compare_digest(given.encode(), self.token.encode()):
                return lambda start: _reply(
                    start, "401 Unauthorized",
                    b"open the URL with ?token= that mpswarm printed at start\n", "text/plain",
                )  # fmt: skip
        return None

    def _check_csrf(self, environ: dict[str, Any]) -> str | None:
        given = environ.get("HTTP_X_MPSWARM_CSRF", "")
        if not hmac.compare_digest(given.encode(), self.csrf.encode()):
            return "missing or wrong X-Mpswarm-Csrf header: use the page"
        return None

    # -- routes ------------------------------------------------------------------------------
    def _get(self, path: str, start_response: StartResponse) -> Iterable[bytes]:
        if path == "/":
            page = self._page.replace("__CSRF_TOKEN__", self.csrf).encode()
            return _reply(start_response, "200 OK", page, "text/html; charset=utf-8")
        if path == "/api/state":
            return _json(start_response, "200 OK", self.controller.state())
        if path == "/plotly.min.js":  # the charts' library, from the plotly package: no CDN
            from mpswarm.report.charts import plotly_js

            script = plotly_js().encode()
            return _reply(start_response, "200 OK", script, "text/javascript; charset=utf-8")
        if path.startswith("/download/"):
            name = path[len("/download/") :]
            if name not in DOWNLOADS:
                return _json(start_response, "404 Not Found", {"error": f"no file {name!r}"})
            try:
                data = self.controller.download(name)
            except (KeyError, FileNotFoundError):
                return _json(start_response, "404 Not Found", {"error": "no run yet"})
            disposition = f'attachment; filename="mpswarm_{name}"'
            return _reply(
                start_response, "200 OK", data, DOWNLOADS[name],
                [("Content-Disposition", disposition)],
            )  # fmt: skip
        return _json(start_response, "404 Not Found", {"error": f"no page {path!r}"})

    def _post(self, path: str, data: dict[str, Any], start_response: StartResponse) -> Any:
        controller = self.controller
        if path == "/api/start":
            controller.start(parse_run_request(data, controller.config))
        elif path == "/api/change":
            request = parse_run_request(data, controller.config)
            controller.change(request.users, request.spawn_rate)
        elif path == "/api/stop":
            controller.stop()
        elif path == "/api/reset":
            controller.reset()
        else:
            return _json(start_response, "404 Not Found", {"error": f"no action {path!r}"})
        return _json(start_response, "200 OK", {"ok": True})


def _body(environ: dict[str, Any]) -> dict[str, Any]:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    raw = environ["wsgi.input"].read(min(length, 1 << 20)) if length else b""
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise UsageError("the body must be JSON") from None
    if not isinstance(data, dict):
        raise UsageError("the body must be a JSON object")
    return data


def _reply(
    start_response: StartResponse,
    status: str,
    body: bytes,
    content_type: str,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    start_response(
        status,
        [
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            *_SECURITY_HEADERS,
            *(headers or []),
        ],
    )
    return [body]


def _json(start_response: StartResponse, status: str, data: Any) -> list[bytes]:
    body = json.dumps(data, default=str).encode()
    return _reply(start_response, status, body, "application/json")
