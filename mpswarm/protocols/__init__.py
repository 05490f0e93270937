"""User classes for protocols beyond HTTP/1.1 (gRPC, WebSocket; HTTP/2 is FastHttpUser's)."""

from __future__ import annotations


def missing_extra(
    what: str, library: str, extra: str, exc: ModuleNotFoundError
) -> ModuleNotFoundError:
    """The one-line error of a protocol whose library is not installed, naming the extra.

    Raised ``from None`` where the library is imported, so that a locustfile's import error
    (exit 2) is this line: ``GrpcUser needs grpcio, which is not installed: pip install
    'mpswarm[grpc]'``.
    """
    return ModuleNotFoundError(
        f"{what} needs {library}, which is not installed: pip install 'mpswarm[{extra}]'",
        name=exc.name,
    )


__all__ = ["missing_extra"]
