"""HTTP/2 heads for the ``_h2`` transport: the request's header list parsed back from the
HTTP/1.1 head the session made, and the response's status and headers under the caps.

The head is parsed rather than passed in parts: a plain request's head is the same bytes
object for every request of a method to a URL, so a parse cached by it costs a dict lookup
(an uncached parse of a 150-byte head takes about 3.5 us), where carrying the parts in
``Outgoing`` would have cost every HTTP/1.1 request too.
"""

from __future__ import annotations

import http
from typing import Any

from mpswarm.http import _limits
from mpswarm.http._errors import BadResponse
from mpswarm.http._limits import MAX_HEADER_SIZE, MAX_HEADERS
from mpswarm.http._transport import Outgoing


def request_of(request: Outgoing) -> tuple[bytes, list[tuple[bytes, bytes]], bool]:
    """(method, the HTTP/2 header list, chunked) of the head the session made, parsed once
    per head bytes."""
    head = request.head
    found = _PARSED.get(head)
    if found is None:
        found = _parse_head(head, request.origin)
        if len(_PARSED) < 4096:  # unique heads must not grow this without end
            _PARSED[head] = found
    return found


_PARSED: dict[bytes, tuple[bytes, list[tuple[bytes, bytes]], bool]] = {}

#: Connection-specific headers, which HTTP/2 forbids (RFC 9113 section 8.2.2).
_HOP = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)


def _parse_head(head: bytes, origin: Any) -> tuple[bytes, list[tuple[bytes, bytes]], bool]:
    lines = head.split(b"\r\n")
    method, target, _ = lines[0].split(b" ", 2)
    scheme, host, port = origin
    authority = b""
    fields: list[tuple[bytes, bytes]] = []
    chunked = False
    for line in lines[1:]:
        if not line:
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip()
        if name == b"host":
            authority = value
        elif name in _HOP:
            chunked = chunked or (name == b"transfer-encoding" and b"chunked" in value.lower())
        elif name != b"te" or value.lower() == b"trailers":
            fields.append((name, value))
    if not authority:
        authority = f"{host}:{port}".encode("latin-1")
    pseudo = [
        (b":method", method),
        (b":scheme", scheme.encode()),
        (b":authority", authority),
        (b":path", target),
    ]
    return method, pseudo + fields, chunked


def response_head(
    headers: list[tuple[bytes, bytes]],
) -> tuple[int, list[tuple[bytes, bytes]], bool, str]:
    """(status, the header pairs without pseudo-headers, a Set-Cookie among them, the
    content coding), the caps checked."""
    status = 0
    pairs: list[tuple[bytes, bytes]] = []
    set_cookie = False
    coding = ""
    size = 0
    for name, value in headers:
        size += len(name) + len(value) + 4
        if name[:1] == b":":
            if name == b":status":
                status = int(value)
            continue
        pairs.append((name, value))
        if name == b"set-cookie":
            set_cookie = True
        elif name == b"content-encoding":
            coding = value.decode("latin-1").strip().lower()
    if len(pairs) > MAX_HEADERS:
        raise BadResponse(_limits.TOO_MANY_HEADERS)
    if size > MAX_HEADER_SIZE:
        raise BadResponse(_limits.HEADERS_TOO_LARGE)
    return status, pairs, set_cookie, coding


def content_length(pairs: list[tuple[bytes, bytes]]) -> int:
    for name, value in pairs:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


#: HTTP/2 has no reason phrase: a response's ``reason`` is the standard one for its status
#: (as httpx gives it), which is what nginx sends in HTTP/1.1.
REASONS = {status.value: status.phrase for status in http.HTTPStatus}
