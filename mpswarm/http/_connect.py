"""Opening a connection for either transport: TCP, a proxy's tunnel, TLS, and what each took.

Both transports connect the same way, so a request reaches the same place with the same
checks whichever user class sends it: straight to the origin, or to the proxy requests would
choose (an http:// proxy: the request's target is absolute; an https:// origin behind it: a
CONNECT tunnel first, then TLS through it, as urllib3 does), TLS verified against requests'
CA bundle unless asked otherwise. The time of the TCP connect and of the TLS handshake are
measured apart (``Response.timings``).
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import time
from typing import Any

from requests.exceptions import InvalidProxyURL, InvalidSchema, RequestException
from urllib3.util import parse_url

from mpswarm._text import printable
from mpswarm.http import _errors
from mpswarm.http._transport import Options, Outgoing, tls_context


def connect(request: Outgoing, factory: Any = None) -> tuple[socket.socket, tuple[int, int]]:
    """A socket connected for ``request``, TLS-wrapped for https, and what it took.

    Args:
        request: what is to be sent (its origin and options).
        factory: makes the TLS context instead of ``tls_context`` (Locust's
            ``ssl_context_factory``); its errors are raised as they are.

    Returns:
        The socket (gevent's, TLS or not, in blocking mode with the connect timeout), and
        (TCP connect, TLS handshake) in microseconds, -1 for no TLS.

    Raises:
        requests.RequestException: ``_errors``' kinds (refused, timed out, TLS, proxy).
    """
    scheme, host, port = request.origin
    options = request.options
    context = None
    if scheme == "https":
        if factory is not None:
            context = factory()
        else:
            try:
                context = tls_context(options.verify, options.cert)
            except ssl.SSLError as exc:  # a key that is not the certificate's: urllib3 finds
                raise _errors.os_error(exc) from None  # it as it connects, and so fails
    start = time.perf_counter()
    if options.proxy is None:
        sock = open_socket(host, port, options.connect_timeout)
    else:
        sock = _through_proxy(options.proxy, scheme, host, port, options)
    connected = time.perf_counter()
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if context is None:
            return sock, (_us(connected - start), -1)
        sock.settimeout(options.connect_timeout)
        tls = context.wrap_socket(sock, server_hostname=host.strip("[]"))
    except RequestException:
        sock.close()
        raise
    except (ssl.SSLError, ssl.CertificateError) as exc:
        sock.close()
        raise _errors.os_error(exc) from None
    except TimeoutError:
        sock.close()
        raise _errors.connect_timeout(options.connect_timeout) from None
    except OSError as exc:
        sock.close()
        raise _errors.os_error(exc) from None
    except BaseException:  # a failed handshake: the socket goes now, not at collection
        sock.close()
        raise
    return tls, (_us(connected - start), _us(time.perf_counter() - connected))


def open_socket(host: str, port: int, timeout: float | None) -> socket.socket:
    """A connected TCP socket; an IP literal skips getaddrinfo, which gevent runs in a thread.

    Raises:
        requests.RequestException: refused, unreachable, no such host, timed out.
    """
    host = host.strip("[]")
    try:
        try:
            version = ipaddress.ip_address(host.split("%", 1)[0]).version
        except ValueError:
            return socket.create_connection((host, port), timeout=timeout)
        sock = socket.socket(socket.AF_INET6 if version == 6 else socket.AF_INET)
        try:
            sock.settimeout(timeout)
            sock.connect((host, port))
        except BaseException:
            sock.close()
            raise
        return sock
    except TimeoutError:
        raise _errors.connect_timeout(timeout) from None
    except OSError as exc:
        raise _errors.os_error(exc) from None


def _through_proxy(
    proxy: str, scheme: str, host: str, port: int, options: Options
) -> socket.socket:
    """A socket to the proxy; for an https origin, tunnelled to it with CONNECT."""
    parts = parse_url(proxy)
    kind = (parts.scheme or "http").lower()
    if kind.startswith("socks"):
        raise InvalidSchema(
            f"proxies: SOCKS proxies ({kind}://) are not supported by mpswarm's clients; "
            "use an http:// proxy"
        )
    if kind != "http" or not parts.host:
        raise InvalidProxyURL(
            f"proxies: {printable(proxy, 100)!r} is not an http:// proxy URL; mpswarm's "
            "clients go through http:// proxies (https:// origins through a CONNECT tunnel)"
        )
    if scheme != "https":
        # the session wrote the absolute-form target for the proxy
        return open_socket(parts.host, parts.port or 80, options.connect_timeout)
    return _tunnel(parts.host, parts.port or 80, host, port, options)


def _tunnel(proxy_host: str, proxy_port: int, host: str, port: int, options: Options) -> Any:
    """A socket tunnelled through the proxy to host:port: http.client's CONNECT (the one
    urllib3, and so requests, sends: its request line and ``Proxy-Authorization`` alone)."""
    connection = http.client.HTTPConnection(proxy_host, proxy_port, timeout=options.connect_timeout)
    connection.set_tunnel(host.strip("[]"), port, headers=options.proxy_headers)
    try:
        connection.connect()
    except TimeoutError:
        connection.close()
        raise _errors.connect_timeout(options.connect_timeout) from None
    except OSError as exc:
        connection.close()
        if "Tunnel connection failed" in str(exc):
            raise _errors.ProxyFailed(f"ProxyError: {printable(str(exc), 120)}") from None
        raise _errors.ProxyFailed(f"ProxyError: {_errors.os_error(exc)}") from None
    except BaseException:
        connection.close()
        raise
    sock, connection.sock = connection.sock, None  # the tunnel is ours now
    return sock


def _us(seconds: float) -> int:
    return int(seconds * 1e6 + 0.5)
