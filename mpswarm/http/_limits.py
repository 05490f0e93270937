"""What a server can make a worker hold: the caps on responses, and the errors that name them.

A worker runs hundreds of users in one process; one server that sends an endless body, a gzip
bomb or endless headers must cost one failed request, not the worker (before these caps one
such response took a worker to 3-6 GB in seconds). Both clients use these numbers and texts,
so a report reads the same whichever user class ran.
"""

from __future__ import annotations

#: Default cap on a response body, after decompression (``max_body_size`` of a user class, a
#: client, or one request). A larger body is a failed request; ``stream=True`` reads past it.
MAX_BODY_SIZE = 32 * 1024 * 1024

#: Most header lines in a response (http.client's own limit, so both clients agree).
MAX_HEADERS = 100

#: Most bytes of a response's status line and headers (FastHttpUser; HttpUser's http.client
#: caps each header line at this size instead).
MAX_HEADER_SIZE = 64 * 1024

#: How much of a body is read or decompressed at a time when it must be counted.
READ_CHUNK = 256 * 1024

#: Most interim (1xx) responses skipped before a final one (RFC 9110 section 15.2 sets no
#: number; a server that never stops sending them must not hold a user for ever).
MAX_INTERIM = 32

#: Most origins a session keeps an idle connection to: a redirect to a new origin on every
#: request (a spray of hosts) must not hold a socket for each of them.
MAX_ORIGINS = 8


def size_text(size: int) -> str:
    """``64 MiB``, ``512 KiB`` or ``1000 bytes``: a cap as a person would write it."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"


def body_too_large(limit: int, decompressed: bool = False) -> str:
    """The error text of a body over ``limit``, e.g. ``BodyTooLarge: response body larger
    than 32 MiB (max_body_size)``; stable, whatever the server announced or sent."""
    kind = "decompressed response body" if decompressed else "response body"
    return f"BodyTooLarge: {kind} larger than {size_text(limit)} (max_body_size)"


TOO_MANY_HEADERS = f"HeadersTooLarge: more than {MAX_HEADERS} response headers"
HEADERS_TOO_LARGE = f"HeadersTooLarge: response headers larger than {size_text(MAX_HEADER_SIZE)}"
HEADER_LINE_TOO_LONG = (
    f"HeadersTooLarge: a response header line longer than {size_text(MAX_HEADER_SIZE)}"
)
NOT_HTTP = "BadResponse: invalid HTTP response from server (not HTTP/1.x)"
BAD_STATUS_LINE = "BadResponse: not valid HTTP (invalid status line)"
INCOMPLETE_BODY = "IncompleteRead: the connection closed before the end of the body"
TOO_MANY_INTERIM = f"BadResponse: more than {MAX_INTERIM} interim (1xx) responses"
UNASKED_UPGRADE = "BadResponse: 101 Switching Protocols to a request that asked for no upgrade"


def check_body_size(limit: object, owner: str, attribute: str = "max_body_size") -> int:
    """``limit`` if it is a usable size cap, else a ValueError naming ``owner.attribute``."""
    if isinstance(limit, bool) or not isinstance(limit, int) or limit <= 0:
        raise ValueError(f"{owner}.{attribute} must be a positive number of bytes, got {limit!r}")
    return limit
