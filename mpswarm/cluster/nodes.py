"""Whether a Ray cluster, and each node of a run, answers on the network, asked directly.

The cluster's own word lags or hangs when it matters: Ray learns of a lost node from its
health checks, about 16 s after the node is gone (measured on a local cluster), ``ray.nodes()``
has hung for good during a node's loss (seen with Ray 2.60), and ``ray.init`` retries an
unreachable address for a minute and more. A connection answers at once.
"""

from __future__ import annotations

import socket

#: Seconds a node's raylet gets to greet a new connection (see ``NodeProbe.alive``).
GREETING_S = 0.5


class NodeProbe:
    """Asks whether a node of the run lives, by its raylet's port.

    Args:
        raylets: each node's raylet address (``NodeManagerAddress``, ``NodeManagerPort``),
            taken from the cluster once, at the start.
        here: this node's id: its raylet lives, so whether it greets a connection says how
            the others are to be asked.
    """

    def __init__(self, raylets: dict[str, tuple[str, int]], here: str) -> None:
        self._raylets = raylets
        self._greets = True
        # If this node's live raylet does not greet (TLS: the server speaks second), a
        # connection that opens is all that tells a live node here.
        self._greets = self.alive(here)

    def alive(self, node_id: str) -> bool:
        """Whether the node's raylet greets a new connection (a gRPC server sends its HTTP/2
        settings first) within ``GREETING_S`` (only opens it, where this node's own raylet
        did not greet: TLS). A dead raylet's port refuses at once, a vanished machine's does
        not answer, and a frozen raylet's (or one whose port a child holds) accepts but says
        nothing."""
        address = self._raylets.get(node_id)
        if address is None:
            return False
        try:
            with socket.create_connection(address, timeout=GREETING_S) as sock:
                sock.settimeout(GREETING_S)
                return not self._greets or bool(sock.recv(1))
        except OSError:
            return False


def unreachable(address: str) -> str | None:
    """Why a ``host:port`` address cannot be a cluster's (None when it may be; ``auto`` and
    ``local`` are Ray's to resolve), without Ray's retries of a minute and more."""
    if address in ("auto", "local"):
        return None
    if address.startswith("ray://"):
        return (
            "a Ray Client address; give the cluster's GCS address (host:6379) from one of its nodes"
        )
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        return "not host:port, auto or local"
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=5).close()
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


__all__ = ["GREETING_S", "NodeProbe", "unreachable"]
