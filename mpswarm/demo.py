"""The built-in demo target: a small gevent WSGI shop and JSON API, for trying mpswarm.

``mpswarm serve`` runs it on 127.0.0.1. It counts every request it serves, by path and by
route, and shows the counts at ``GET /__stats`` (``POST /__reset`` clears them), so a load
test's numbers can be checked against the server's. With the websocket extra it has a
WebSocket echo at ``/ws/echo`` too, each message counted as ``WS /ws/echo`` (``_demo_ws``).
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import gevent

from mpswarm import _demo_ws

Environ = dict[str, Any]
StartResponse = Callable[..., Any]

_STATUS_TEXT = {
    200: "OK",
    201: "Created",
    204: "No Content",
    301: "Moved Permanently",
    302: "Found",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    418: "I'm a teapot",
    426: "Upgrade Required",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}
_MAX_SLOW_MS = 60_000
_MAX_BYTES = 10 * 1024 * 1024
_ROUTES: list[tuple[str, re.Pattern[str], str]] = [
    (method, re.compile(f"^{pattern}$"), name)
    for method, pattern, name in [
        ("GET", r"/", "index"),
        ("POST", r"/login", "login"),
        ("POST", r"/logout", "logout"),
        ("GET", r"/items/(?P<id>[^/]+)", "item"),
        ("GET", r"/cart", "cart"),
        ("POST", r"/cart", "cart_add"),
        ("GET", r"/slow", "slow"),
        ("GET", r"/status/(?P<code>\d{3})", "status"),
        ("GET", r"/bytes/(?P<n>\d+)", "bytes"),
        ("GET", r"/api/items", "api_list"),
        ("POST", r"/api/items", "api_create"),
        ("GET", r"/api/items/(?P<id>\d+)", "api_get"),
        ("DELETE", r"/api/items/(?P<id>\d+)", "api_delete"),
        ("GET", r"/redirect/(?P<n>\d+)", "redirect"),
        ("*", r"/echo", "echo"),
        ("GET", r"/capacity/(?P<n>\d+)", "capacity"),
        ("GET", r"/ws/echo", "ws_echo"),
    ]
]
_TEMPLATES = {
    "item": "/items/<id>",
    "status": "/status/<code>",
    "bytes": "/bytes/<n>",
    "api_get": "/api/items/<id>",
    "api_delete": "/api/items/<id>",
    "redirect": "/redirect/<n>",
    "capacity": "/capacity/<n>",
}
#: /capacity/<N>: longest a request queues before a 503 (its queue is bounded by time).
_MAX_QUEUE_S = 10.0


class DemoApp:
    """The WSGI application. Thread- and greenlet-safe counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.paths: Counter[str] = Counter()
        self.routes: Counter[str] = Counter()
        self._sessions: dict[str, list[str]] = {}
        self._api: dict[int, dict[str, Any]] = {}
        self._next_id = 1
        # /capacity/<N>: when each rate's server is next free (perf_counter seconds).
        self._free_at: dict[int, float] = {}

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO") or "/"
        if path == "/__stats":
            with self._lock:
                body = {
                    "total": sum(self.paths.values()),
                    "paths": dict(self.paths),
                    "routes": dict(self.routes),
                }
            return _json(start_response, 200, body)
        if path == "/__reset" and method == "POST":
            with self._lock:
                self.paths.clear()
                self.routes.clear()
            return _json(start_response, 200, {"reset": True})
        as_method = "GET" if method == "HEAD" else method
        for route_method, pattern, name in _ROUTES:
            match = pattern.match(path)
            if match and route_method in (as_method, "*"):
                with self._lock:
                    self.paths[f"{method} {path}"] += 1
                    self.routes[f"{method} {_TEMPLATES.get(name, path)}"] += 1
                handler = getattr(self, f"_{name}")
                body = handler(environ, start_response, **match.groupdict())
                # pywsgi would send a HEAD response's body, corrupting the next response on a
                # kept-alive connection: send the GET headers only.
                return [] if method == "HEAD" else body
        with self._lock:
            self.paths[f"{method} {path}"] += 1
            self.routes[f"{method} <unknown>"] += 1
        return _json(start_response, 404, {"error": f"no route for {method} {path}"})

    # -- shop --------------------------------------------------------------------------------
    def _index(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        page = (
            b"<!doctype html><html><head><title>mpswarm demo shop</title></head><body>"
            b"<h1>mpswarm demo shop</h1><ul>"
            + b"".join(b'<li><a href="/items/%d">item %d</a></li>' % (i, i) for i in range(1, 21))
            + b"</ul></body></html>"
        )
        return _send(start_response, 200, page, "text/html; charset=utf-8")

    def _login(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        form = _read_form(environ)
        username = form.get("username")
        if not username:
            return _json(start_response, 400, {"error": "username is required"})
        token = secrets.token_hex(8)
        with self._lock:
            self._sessions[token] = []
        cookie = ("Set-Cookie", f"session={token}; Path=/; HttpOnly")
        return _json(start_response, 200, {"user": username}, [cookie])

    def _logout(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        token = _cookie(environ, "session")
        with self._lock:
            self._sessions.pop(token or "", None)
        expired = ("Set-Cookie", "session=; Path=/; Max-Age=0")
        return _json(start_response, 200, {"logged_out": True}, [expired])

    def _item(self, environ: Environ, start_response: StartResponse, id: str) -> Iterable[bytes]:
        if not id.isdigit():
            return _json(start_response, 404, {"error": f"no item {id!r}"})
        number = int(id)
        return _json(
            start_response,
            200,
            {
                "id": number,
                "name": f"item {number}",
                "price": round(1 + (number * 37 % 1000) / 10, 2),
            },
        )

    def _cart(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            items = self._sessions.get(_cookie(environ, "session") or "")
            if items is None:
                return _json(start_response, 401, {"error": "log in first"})
            return _json(start_response, 200, {"items": list(items)})

    def _cart_add(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        form = _read_form(environ)
        with self._lock:
            items = self._sessions.get(_cookie(environ, "session") or "")
            if items is None:
                return _json(start_response, 401, {"error": "log in first"})
            items.append(str(form.get("item_id", "?")))
            del items[:-50]
            return _json(start_response, 200, {"items": len(items)})

    # -- test helpers ------------------------------------------------------------------------
    def _capacity(self, environ: Environ, start_response: StartResponse, n: str) -> Iterable[bytes]:
        """A server of known capacity: at most N answers a second, the rest queue (up to
        ``_MAX_QUEUE_S``, then 503), as one worker taking 1/N s a request would."""
        rate = int(n)
        if rate < 1:
            return _json(start_response, 400, {"error": "N must be at least 1"})
        now = time.perf_counter()
        with self._lock:
            slot = max(now, self._free_at.get(rate, now))
            if slot - now > _MAX_QUEUE_S:
                return _json(start_response, 503, {"error": "queue full"})
            self._free_at[rate] = slot + 1.0 / rate
        gevent.sleep(slot - now + 1.0 / rate)  # its turn, then its service time
        return _json(start_response, 200, {"capacity": rate})

    def _slow(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        try:
            ms = min(_MAX_SLOW_MS, max(0, int(query.get("ms", ["100"])[0])))
        except ValueError:
            return _json(start_response, 400, {"error": "ms must be an integer"})
        gevent.sleep(ms / 1000.0)
        return _json(start_response, 200, {"slept_ms": ms})

    def _status(
        self, environ: Environ, start_response: StartResponse, code: str
    ) -> Iterable[bytes]:
        status = int(code)
        if status < 200 or status > 599:
            return _json(start_response, 400, {"error": "status must be 200-599"})
        if status in (204, 304):
            return _send(start_response, status, b"", "text/plain")
        return _json(start_response, status, {"status": status})

    def _bytes(self, environ: Environ, start_response: StartResponse, n: str) -> Iterable[bytes]:
        size = min(int(n), _MAX_BYTES)
        return _send(start_response, 200, b"x" * size, "application/octet-stream")

    def _redirect(self, environ: Environ, start_response: StartResponse, n: str) -> Iterable[bytes]:
        left = int(n)
        target = f"/redirect/{left - 1}" if left > 1 else "/"
        return _send(start_response, 302, b"", "text/plain", [("Location", target)])

    def _echo(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        headers = {
            key[5:].replace("_", "-").title(): value
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        if environ.get("CONTENT_TYPE"):
            headers["Content-Type"] = environ["CONTENT_TYPE"]
        body = _read_body(environ)
        return _json(
            start_response,
            200,
            {
                "method": environ["REQUEST_METHOD"],
                "query": environ.get("QUERY_STRING", ""),
                "headers": headers,
                "body": body.decode("latin-1"),
            },
        )

    def _ws_echo(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        """A WebSocket echo; each message counts as ``WS /ws/echo`` (``_demo_ws``)."""
        if not _demo_ws.available():
            return _json(start_response, 501, {"error": _demo_ws.MISSING})
        if environ.get("HTTP_UPGRADE", "").lower() != "websocket" or not environ.get(
            "HTTP_SEC_WEBSOCKET_KEY"
        ):
            return _json(start_response, 426, {"error": "a WebSocket handshake is expected"})

        def count() -> None:
            with self._lock:
                self.paths["WS /ws/echo"] += 1
                self.routes["WS /ws/echo"] += 1

        return _demo_ws.echo(environ, start_response, count)

    # -- JSON API ----------------------------------------------------------------------------
    def _api_list(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        query = parse_qs(environ.get("QUERY_STRING", ""))
        page = int(query.get("page", ["1"])[0]) if query.get("page", ["1"])[0].isdigit() else 1
        with self._lock:
            ids = sorted(self._api)[(page - 1) * 20 : page * 20]
            items = [self._api[i] for i in ids]
        return _json(start_response, 200, {"page": page, "items": items})

    def _api_create(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        try:
            payload = json.loads(_read_body(environ) or b"{}")
        except ValueError:
            return _json(start_response, 400, {"error": "body must be JSON"})
        if not isinstance(payload, dict) or "name" not in payload:
            return _json(start_response, 422, {"error": "name is required"})
        with self._lock:
            item = {"id": self._next_id, "name": str(payload["name"])}
            self._api[self._next_id] = item
            self._next_id += 1
            if len(self._api) > 10_000:  # bounded memory under long runs
                self._api.pop(min(self._api))
        return _json(start_response, 201, item)

    def _api_get(self, environ: Environ, start_response: StartResponse, id: str) -> Iterable[bytes]:
        with self._lock:
            item = self._api.get(int(id))
        if item is None:
            return _json(start_response, 404, {"error": f"no item {id}"})
        return _json(start_response, 200, item)

    def _api_delete(
        self, environ: Environ, start_response: StartResponse, id: str
    ) -> Iterable[bytes]:
        with self._lock:
            found = self._api.pop(int(id), None)
        if found is None:
            return _json(start_response, 404, {"error": f"no item {id}"})
        return _send(start_response, 204, b"", "text/plain")


def _send(
    start_response: StartResponse,
    status: int,
    body: bytes,
    content_type: str,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(body)))]
    start_response(f"{status} {_STATUS_TEXT.get(status, 'Status')}", headers + (extra or []))
    return [body]


def _json(
    start_response: StartResponse,
    status: int,
    payload: Any,
    extra: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    return _send(start_response, status, json.dumps(payload).encode(), "application/json", extra)


def _read_body(environ: Environ) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    return environ["wsgi.input"].read(length) if length > 0 else b""


def _read_form(environ: Environ) -> dict[str, Any]:
    body = _read_body(environ)
    if environ.get("CONTENT_TYPE", "").startswith("application/json"):
        try:
            data = json.loads(body or b"{}")
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}
    return {key: values[0] for key, values in parse_qs(body.decode("latin-1")).items()}


def _cookie(environ: Environ, name: str) -> str | None:
    for part in environ.get("HTTP_COOKIE", "").split(";"):
        key, _, value = part.strip().partition("=")
        if key == name:
            return value
    return None


def make_server(host: str = "127.0.0.1", port: int = 8088) -> Any:
    """A gevent WSGI server for the demo app (not started)."""
    import socket

    from gevent.pywsgi import WSGIServer

    class _NoDelayServer(WSGIServer):
        # pywsgi writes headers and body separately: without TCP_NODELAY, Nagle holds the
        # body until the client's delayed ACK (40 ms on Linux), faking a slow server.
        def handle(self, sock: Any, address: Any) -> Any:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return super().handle(sock, address)

    return _NoDelayServer((host, port), DemoApp(), log=None)
