"""``GrpcUser``: a user whose ``self.stub`` calls a gRPC service, each call recorded.

Needs grpcio (``pip install 'mpswarm[grpc]'``). The module's name does not shadow the grpc
package: with absolute imports (``from __future__ import annotations`` and Python 3's rules)
``import grpc`` here is always grpcio.

How grpc runs under mpswarm, found by trying (tests/protocols/test_grpc.py keeps it so):

- grpc's threads must cooperate with gevent (``grpc.experimental.gevent.init_gevent()``): the
  first GrpcUser of each worker turns it on there. Turned on in the parent (Locust's example
  does it at import), it was bound to the parent's hub, which is destroyed before the fork:
  every grpc call then waited forever, so it is bound to each process's new hub
  (``protocols/_grpc_gevent``).
- Channels are made per user, in the worker that runs it (users are created there), never
  inherited through the fork. A channel the locustfile makes (and even calls) at import time
  in the parent does not hang the workers: grpc's fork support stays off (its default), so the
  forks neither wait on nor reset grpc's state; the parent's channel is simply unused there.

Each call through ``self.stub`` is recorded once through ``mpswarm.user._calls.Call``, type
``grpc``, name the full method (``/package.Service/Method``):

- unary: the response's ``ByteSize()`` is the length; a status other than OK is a failure
  reading ``StatusCode.NAME: details`` (escaped like every failure text), and the stub raises
  grpc's ``RpcError`` to the task as it does anywhere (Locust's example too);
- server streaming: the stream is read whole in the call, so the time is to the last message
  and the first message's time is the time to first byte; the task then iterates over the
  messages received. An endless stream never ends its call: this class is not for those;
- client streaming: the messages are counted as grpc sends them, their bytes are the
  breakdown's bytes sent;
- message counts go in the request event's ``context`` (``messages_sent``,
  ``messages_received``) and the length is the bytes of every message received (the
  statistics have no column for message counts).

A ``.future()`` call is waited for in the call (recorded with its time): greenlets, not
futures, are the way to run calls side by side here.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from mpswarm.protocols import missing_extra

try:
    import grpc
except ModuleNotFoundError as exc:  # the one line a locustfile's import error shows
    raise missing_extra("GrpcUser", "grpcio", "grpc", exc) from None

from mpswarm.http._limits import MAX_BODY_SIZE
from mpswarm.protocols import _grpc_gevent
from mpswarm.user._calls import Call, phases_us
from mpswarm.user.users import User


def channel_target(host: str) -> tuple[str, bool]:
    """The grpc target of a host (``grpc://h:p``, ``grpcs://h:p`` or ``h:p``) and whether it
    takes TLS."""
    scheme, sep, rest = host.partition("://")
    if not sep:
        return host, False
    return rest.rstrip("/"), scheme == "grpcs"


class GrpcUser(User):
    """A user with ``self.stub``: ``stub_class`` on a channel to ``host``, every call recorded.

    Class attributes (set them in a subclass):
        stub_class: the generated stub class (``echo_pb2_grpc.EchoStub``).
        host: ``grpc://HOST:PORT``, ``grpcs://HOST:PORT`` (TLS) or ``HOST:PORT``, as in
            Locust's example (plain).
        root_certificates: for grpcs, the CA certificates that verify the server (PEM bytes or
            a file's path); None: the system's. TLS always verifies, as grpc does.
        max_message_size: the cap on a message in bytes, both ways (default 32 MiB, as
            HttpUser's ``max_body_size``); a larger one fails its call (RESOURCE_EXHAUSTED).
        channel_options: more grpc channel options, ``[("grpc.keepalive_time_ms", 10000)]``.

    Attributes:
        channel: this user's channel (closed when the user ends).
        stub: ``stub_class(channel)``.
    """

    abstract = True
    _host_schemes = ("grpc", "grpcs", "")
    stub_class: Any = None
    root_certificates: bytes | str | None = None
    max_message_size: int = MAX_BODY_SIZE
    channel_options: list[tuple[str, Any]] = []

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """A class to run is checked where it is defined: the locustfile's import fails with
        one line naming it (exit 2, before any load), not each user in the workers."""
        super().__init_subclass__(**kwargs)
        if cls.abstract:
            return
        if cls.stub_class is None:
            raise TypeError(f"{cls.__name__} has no stub_class: set it to the stub class "
                            "grpcio-tools generated (svc_pb2_grpc.SvcStub)")  # fmt: skip
        cap = cls.max_message_size
        if isinstance(cap, bool) or not isinstance(cap, int) or cap <= 0:
            raise TypeError(f"{cls.__name__}.max_message_size must be a positive number of "
                            f"bytes, got {cap!r}")  # fmt: skip

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        if not self.host:
            raise ValueError(
                f"{type(self).__name__} has no host: set host on the class or pass -H/--host"
            )
        cap = self.max_message_size
        _grpc_gevent.bind()  # grpc's threads cooperate with gevent, in this worker
        target, tls = channel_target(self.host)
        options = [
            ("grpc.max_send_message_length", cap),
            ("grpc.max_receive_message_length", cap),
            *self.channel_options,
        ]
        if tls:
            credentials = grpc.ssl_channel_credentials(_pem(self.root_certificates))
            channel = grpc.secure_channel(target, credentials, options=options)
        else:
            channel = grpc.insecure_channel(target, options=options)
        self._raw_channel = channel
        self.channel = grpc.intercept_channel(channel, _Recording(self, self.host.rstrip("/")))
        self.stub = self.stub_class(self.channel)

    def _ended(self, error: Exception | None) -> None:
        try:
            super()._ended(error)
        finally:
            self._raw_channel.close()  # its connection goes with the user


def _pem(certificates: bytes | str | None) -> bytes | None:
    if certificates is None or isinstance(certificates, bytes):
        return certificates
    with open(os.fspath(certificates), "rb") as handle:
        return handle.read()


def _status_text(error: grpc.RpcError) -> str:
    """``StatusCode.NAME: details``; the recorder escapes it (the details are the server's)."""
    code = error.code() if isinstance(error, grpc.Call) else None
    details = error.details() if isinstance(error, grpc.Call) else str(error)
    return f"{code}: {details}" if details else str(code)


class _Counted:
    """A request iterator that counts the messages grpc takes from it, and their bytes."""

    __slots__ = ("_source", "bytes", "messages")

    def __init__(self, source: Iterable[Any]) -> None:
        self._source = iter(source)
        self.messages = 0
        self.bytes = 0

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        message = next(self._source)
        self.messages += 1
        self.bytes += message.ByteSize()
        return message


class _Received:
    """A server stream read whole (see the module docstring): its messages, then its status.

    Iterates like grpc's streaming call and answers its ``grpc.Call`` methods
    (``code()``, ``details()``, metadata...) from the finished call.
    """

    def __init__(self, call: Any, messages: list[Any], error: grpc.RpcError | None) -> None:
        self._call = call
        self._messages = iter(messages)
        self._error = error

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        for message in self._messages:
            return message
        if self._error is not None:
            raise self._error
        raise StopIteration

    def __getattr__(self, name: str) -> Any:
        return getattr(self._call, name)


class _Recording(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):
    """The interceptor that records each call of one user's channel (weakly: no cycle)."""

    def __init__(self, user: User, url: str) -> None:
        self._user = weakref.ref(user)
        self._url = url

    def _call(self, method: str) -> Call:
        return Call(self._user(), "grpc", method, self._url + method)

    def intercept_unary_unary(self, continuation: Callable[..., Any], details: Any,
                              request: Any) -> Any:  # fmt: skip
        with self._call(details.method) as call:
            call.phases = phases_us(None, None, None, request.ByteSize())
            outcome = continuation(details, request)
            self._settle(call, outcome, 1)
        return outcome

    def intercept_stream_unary(self, continuation: Callable[..., Any], details: Any,
                               requests: Iterable[Any]) -> Any:  # fmt: skip
        with self._call(details.method) as call:
            sent = _Counted(requests)
            outcome = continuation(details, sent)
            self._settle(call, outcome, sent.messages)
            call.phases = phases_us(None, None, None, sent.bytes)
        return outcome

    def intercept_unary_stream(self, continuation: Callable[..., Any], details: Any,
                               request: Any) -> Any:  # fmt: skip
        with self._call(details.method) as call:
            received, first_s = self._read_stream(call, continuation(details, request))
            call.context["messages_sent"] = 1
            call.phases = phases_us(None, None, first_s, request.ByteSize())
            return received

    def intercept_stream_stream(self, continuation: Callable[..., Any], details: Any,
                                requests: Iterable[Any]) -> Any:  # fmt: skip
        with self._call(details.method) as call:
            sent = _Counted(requests)
            received, first_s = self._read_stream(call, continuation(details, sent))
            call.context["messages_sent"] = sent.messages
            call.phases = phases_us(None, None, first_s, sent.bytes)
            return received

    @staticmethod
    def _settle(call: Call, outcome: Any, sent: int) -> None:
        """A unary response's outcome (waited for) into ``call``."""
        error = outcome.exception()
        call.context["messages_sent"] = sent
        if error is not None:
            call.fail(_status_text(error))
            call.context["messages_received"] = 0
            return
        call.length = outcome.result().ByteSize()
        call.context["messages_received"] = 1

    @staticmethod
    def _read_stream(call: Call, stream: Any) -> tuple[_Received, float | None]:
        """A server stream read whole into ``call``; with its first message's time (s)."""
        messages: list[Any] = []
        error: grpc.RpcError | None = None
        first_s: float | None = None
        try:
            for message in stream:
                if first_s is None:
                    first_s = call.elapsed_ms() / 1000.0
                messages.append(message)
                call.length += message.ByteSize()
        except grpc.RpcError as exc:
            error = exc
            call.fail(_status_text(exc))
        call.context["messages_received"] = len(messages)
        return _Received(stream, messages, error), first_s


__all__ = ["GrpcUser", "channel_target"]
