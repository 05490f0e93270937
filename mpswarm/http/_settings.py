"""Where and how a request is sent: requests' environment settings, the transport's options.

requests decides a request's proxy (``proxies=``, the session's, ``HTTP_PROXY`` and
``NO_PROXY``...), its CA bundle (``verify=``, ``REQUESTS_CA_BUNDLE``) and its client
certificate in ``Session.merge_environment_settings``; that method is called here, as it is.
It reads the environment on every call (about 15 us); a request that brings no setting of its
own is answered from what was found for its origin and its session's profile: the session's
settings and the part of the environment requests reads, taken when the session first sends
(about 25 us, once per session). A session made after the environment changed follows it; one
already sending keeps what it found (requests reads it again per request; the environment of a
load generator does not change under a run).
"""

from __future__ import annotations

import functools
import os
from typing import Any, NamedTuple

from requests.utils import (
    get_auth_from_url,
    get_netrc_auth,
    prepend_scheme_if_needed,
    select_proxy,
)
from urllib3 import Timeout
from urllib3.util import make_headers

from mpswarm.http._prepare import Route
from mpswarm.http._transport import Options


class Settings:
    """A request's environment settings: every proxy, the one chosen, verify and cert."""

    __slots__ = ("cert", "proxies", "proxy", "verify")

    def __init__(self, proxies: Any, proxy: str | None, verify: Any, cert: Any) -> None:
        self.proxies = proxies
        self.proxy = proxy
        self.verify = verify
        self.cert = cert


class Profile(NamedTuple):
    """What a session's requests are sent under: its settings, and the environment it found."""

    kind: type
    verify: Any
    cert: Any
    trust_env: bool
    insecure: bool
    timeouts: tuple[float | None, float | None]
    #: The variables requests reads (``environment()``); None where ``trust_env`` is off.
    environment: tuple[tuple[str, str], ...] | None


def profile_of(session: Any) -> Profile:
    """A session's profile now: the same object for sessions alike, so that they share what
    was found for them (a profile with a setting that is no hashable value is its own)."""
    trust_env = session.trust_env
    made = Profile(
        type(session), session.verify, session.cert, trust_env, session.insecure,
        session._timeouts, environment() if trust_env else None,
    )  # fmt: skip
    try:
        return _PROFILES.setdefault(made, made)
    except TypeError:  # a setting that is no hashable value (a list)
        return made


#: One profile object per distinct profile (bounded: settings and environments a process sees).
_PROFILES: dict[Profile, Profile] = {}

#: The variables requests reads besides ``*_proxy`` (any case, as urllib's ``getproxies``):
#: REQUEST_METHOD hides HTTP_PROXY, the CA bundles, and where the netrc file is.
_READ = frozenset(("REQUEST_METHOD", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "NETRC", "HOME"))


def environment() -> tuple[tuple[str, str], ...]:
    """The part of the environment that decides where and how requests sends a request."""
    environ = os.environ
    return tuple(
        sorted(
            (name, environ[name])
            for name in environ
            if name in _READ or name[-6:].lower() == "_proxy"
        )
    )


def for_request(
    session: Any,
    profile: Profile,
    route: Route,
    proxies: Any,
    verify: Any,
    cert: Any,
    timeout: Any,
) -> tuple[Settings, Options]:
    """A request's settings and options; for one that brings none of its own, looked up once
    per origin and session profile."""
    plain = proxies is None and verify is None and cert is None and timeout is None
    if plain and not session._proxies:
        key = (route.origin, profile)
        found = _lookup(_PLAIN, key)
        if found is None:
            chosen = settings(session, profile, route, None, None, None)
            found = (chosen, options(None, session._timeouts, chosen))
            _keep(_PLAIN, key, found)
        return found
    chosen = settings(session, profile, route, proxies, verify, cert)
    return chosen, options(timeout, session._timeouts, chosen)


#: (settings, options) of requests without settings of their own, by origin and profile.
_PLAIN: dict[Any, tuple[Settings, Options]] = {}


def settings(
    session: Any, profile: Profile, route: Route, proxies: Any, verify: Any, cert: Any
) -> Settings:
    """requests' ``merge_environment_settings`` for a request to ``route``, with the session's
    ``insecure`` applied last (it verifies nothing, whatever the environment says)."""
    if proxies is None and verify is None and cert is None and not session._proxies:
        key = (route.origin, profile)
        found = _lookup(_SETTINGS, key)
        if found is None:
            found = _merged(session, route.url, {}, None, None)
            _keep(_SETTINGS, key, found)
        return found
    return _merged(session, route.url, dict(proxies or {}), verify, cert)


def _lookup(kept: dict[Any, Any], key: Any) -> Any:
    try:
        return kept.get(key)
    except TypeError:  # a profile with a setting that is no hashable value: never kept
        return None


def _keep(kept: dict[Any, Any], key: Any, found: Any) -> None:
    if len(kept) < 1024:  # bounded: origins and profiles a process sees
        try:
            kept[key] = found
        except TypeError:
            pass


def _merged(session: Any, url: str, proxies: dict[str, Any], verify: Any, cert: Any) -> Settings:
    merged = session.merge_environment_settings(url, proxies, None, verify, cert)
    chosen = merged["proxies"]
    verify = False if session.insecure else merged["verify"]
    return Settings(chosen, select_proxy(url, chosen), verify, merged["cert"])


#: Settings by (origin, profile).
_SETTINGS: dict[Any, Settings] = {}


def options(timeout: Any, default: tuple[Any, Any], found: Settings) -> Options:
    """The transport's options for a request (one object for every request sent alike).

    Args:
        timeout: the request's ``timeout=``: seconds, (connect, read), a urllib3 Timeout, or
            None for ``default``.
        default: (connect, read) when the request gives none.
        found: its environment settings.

    Raises:
        ValueError: a timeout requests refuses.
        OSError: a client certificate or key file that does not exist (requests' text).
    """
    if timeout is None:
        connect, read = default
    elif isinstance(timeout, tuple):
        try:
            connect, read = timeout
        except ValueError:
            raise ValueError(
                f"Invalid timeout {timeout}. Pass a (connect, read) timeout tuple, "
                "or a single float to set both timeouts to the same value."
            ) from None
    elif isinstance(timeout, Timeout):
        connect, read = timeout.connect_timeout, timeout.read_timeout
        connect = None if connect is Timeout.DEFAULT_TIMEOUT else connect
        read = None if read is Timeout.DEFAULT_TIMEOUT else read
    else:
        connect = read = timeout
    key = (connect, read, found.verify, found.cert, found.proxy)
    made = _OPTIONS.get(key)
    if made is None:
        made = _make(connect, read, found)
        if len(_OPTIONS) < 1024:
            _OPTIONS[key] = made
    return made


def _make(connect: Any, read: Any, found: Settings) -> Options:
    cert = found.cert
    if cert:  # requests checks the files whatever the URL's scheme
        certfile, keyfile = (cert, None) if isinstance(cert, str) else (cert[0], cert[1])
        if not os.path.exists(certfile):
            raise OSError(f"Could not find the TLS certificate file, invalid path: {certfile}")
        if keyfile and not os.path.exists(keyfile):
            raise OSError(f"Could not find the TLS key file, invalid path: {keyfile}")
    proxy = found.proxy
    proxy_headers = None
    if proxy:
        proxy = prepend_scheme_if_needed(proxy, "http")
        user, password = get_auth_from_url(proxy)
        if user:
            basic = make_headers(proxy_basic_auth=f"{user}:{password}")
            proxy_headers = {"Proxy-Authorization": basic["proxy-authorization"]}
    else:
        proxy = None
    return Options(_seconds(connect), _seconds(read), found.verify, cert, proxy, proxy_headers)


#: Options by (connect, read, verify, cert, proxy).
_OPTIONS: dict[Any, Options] = {}


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"Timeout value was {value!r}, but it must be an int, float or None.")
    return float(value)


def netrc_auth(origin: tuple[str, str, int], profile: Profile) -> Any:
    """The credentials ``~/.netrc`` (or ``$NETRC``) holds for an origin, as requests reads
    them; none where the session does not trust the environment."""
    if not profile.trust_env:
        return None
    return _netrc_auth(origin, profile.environment)


@functools.lru_cache(maxsize=256)  # once per origin and environment: a netrc file is read per call
def _netrc_auth(origin: tuple[str, str, int], environment: Any) -> Any:
    scheme, host, port = origin
    return get_netrc_auth(f"{scheme}://{host}:{port}/")
