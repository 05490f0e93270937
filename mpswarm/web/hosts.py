"""The names the web UI is served as: which ``Host`` and ``Origin`` values it answers.

DNS rebinding: a page at ``http://evil.example:8089/`` re-points ``evil.example`` at
127.0.0.1 after it loaded; the browser then sends the UI's own requests, and lets the page
read the answers, as *same-origin* with ``evil.example``. The request still says who it
thinks it is talking to: ``Host: evil.example:8089``. Answering only the names the UI is
served as closes that hole; comparing ``Origin`` with the same names (never with the
request's own ``Host``, which the attacker chooses) closes the cross-site one.

Accepted ``Host`` values (a name without a port means port 80, as browsers send it):

- the bound address with the UI's port, and the address the connection arrived on (an IP
  literal: a rebinding page can only ever send its own *name*);
- bound to loopback: also ``localhost``, ``127.0.0.1`` and ``[::1]`` with the UI's port;
- bound to ``0.0.0.0`` / ``::``: also those, and this machine's name
  (``socket.gethostname()``, what the printed URL shows) with the UI's port. Other names
  need DNS to be known, which the UI does not ask;
- every ``--web-allowed-host NAME``, with any port or none (a reverse proxy or a port
  mapping serves it under another port).

``Origin``, when sent, must be ``http://`` plus an accepted ``Host`` value, or ``https://``
plus a ``--web-allowed-host`` name (a proxy that terminates TLS).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable

from mpswarm.exceptions import UsageError

_AUTHORITY = re.compile(
    r"(?:\[(?P<ip6>[0-9a-f:.]+)\]|(?P<name>[a-z0-9_.-]+))(?::(?P<port>[0-9]{1,5}))?"
)
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARDS = ("0.0.0.0", "::", "")


def split_authority(text: str) -> tuple[str, int | None] | None:
    """``(name, port)`` of a ``Host`` value (``name``, ``name:port``, ``[v6]``, ``[v6]:port``).

    Names are lower-cased and IP addresses written the one way :mod:`ipaddress` writes them,
    so ``[0:0::1]`` and ``[::1]`` compare equal.

    Returns:
        None when ``text`` is not of that form, or the port is 0 or above 65535.
    """
    match = _AUTHORITY.fullmatch(text.lower())
    if match is None:
        return None
    port = int(match["port"]) if match["port"] is not None else None
    if port is not None and not 0 < port < 65536:
        return None
    if match["ip6"] is not None:
        try:
            ipaddress.IPv6Address(match["ip6"])
        except ValueError:
            return None
        return canonical_name(match["ip6"]), port
    return canonical_name(match["name"]), port


def canonical_name(name: str) -> str:
    """``name`` lower-cased; an IP address in :mod:`ipaddress`'s spelling (IPv4-mapped: IPv4)."""
    name = name.lower().strip("[]")
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return name
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


def parse_allowed_names(values: Iterable[str]) -> frozenset[str]:
    """The ``--web-allowed-host`` values as names; a value with a port or a path is an error.

    Raises:
        UsageError: a value that is not a host name or an IP address.
    """
    names = set()
    for value in values:
        text = value.strip()
        if ":" in text and not text.startswith("["):
            text = f"[{text}]"  # a bare IPv6 address
        parsed = split_authority(text)
        if parsed is None or parsed[1] is not None or not parsed[0].strip("."):
            raise UsageError(
                f"--web-allowed-host {value!r} is not a host name or an IP address "
                "(give it without a scheme or a port: any port is accepted)"
            )
        names.add(parsed[0])
    return frozenset(names)


class AllowedHosts:
    """The ``Host`` / ``Origin`` allow-list of a web UI bound to ``bind_host``:``port``.

    Args:
        bind_host: the address the UI listens on (``--web-host``).
        port: the port it actually listens on (after ``--web-port 0`` picked one).
        extra: names from ``--web-allowed-host`` (see :func:`parse_allowed_names`).
        hostname: this machine's name, used when bound to every interface
            (default ``socket.gethostname()``).
    """

    def __init__(
        self,
        bind_host: str,
        port: int,
        extra: Iterable[str] = (),
        hostname: str | None = None,
    ) -> None:
        self.port = port
        self.extra = frozenset(canonical_name(name) for name in extra)
        own = {canonical_name(bind_host)} if bind_host not in _WILDCARDS else set()
        if bind_host in _WILDCARDS:
            own.update(_LOOPBACK_NAMES)
            own.add(canonical_name(hostname if hostname is not None else socket.gethostname()))
            own.add(canonical_name(bind_host or "0.0.0.0"))
        elif is_loopback(bind_host):
            own.update(_LOOPBACK_NAMES)
        self.own = frozenset(own)

    def allows_host(self, host: str | None, local_address: str | None = None) -> bool:
        """Whether a request with this ``Host`` header is for this UI.

        Args:
            host: the header's value; None when the request had none (HTTP/1.0).
            local_address: the IP address the connection arrived on, when known.
        """
        parsed = split_authority(host) if host else None
        return parsed is not None and self._allows(*parsed, local_address)

    def allows_origin(self, origin: str, local_address: str | None = None) -> bool:
        """Whether an ``Origin`` header names this UI (``null`` and other schemes do not)."""
        scheme, sep, authority = origin.partition("://")
        parsed = split_authority(authority) if sep else None
        if parsed is None:
            return False
        scheme = scheme.lower()
        if scheme == "https":
            return parsed[0] in self.extra
        return scheme == "http" and self._allows(*parsed, local_address)

    def names(self) -> list[str]:
        """The accepted names, for a message (sorted; extra names marked with any port)."""
        own = [_with_port(name, self.port) for name in sorted(self.own)]
        return own + [f"{_with_port(name, None)} (any port)" for name in sorted(self.extra)]

    def _allows(self, name: str, port: int | None, local_address: str | None) -> bool:
        if name in self.extra:
            return True
        if (port if port is not None else 80) != self.port:
            return False
        if name in self.own:
            return True
        return local_address is not None and name == canonical_name(local_address)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _with_port(name: str, port: int | None) -> str:
    shown = f"[{name}]" if ":" in name else name
    return shown if port is None else f"{shown}:{port}"
