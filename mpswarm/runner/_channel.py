"""Length-prefixed pickled messages over a UNIX socket (the control plane).

Only small, rare messages travel here: targets, state changes, a row's name the first time it
is used. Request statistics never do: they live in shared memory.
"""

from __future__ import annotations

import pickle
import socket
import struct
from typing import Any

from gevent.lock import Semaphore

_HEADER = struct.Struct("!I")


class Channel:
    """One end of a parent-worker pipe. ``send`` is safe to call from several greenlets.

    Args:
        sock: a connected stream socket (gevent-cooperative once monkey-patched).
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._reader = sock.makefile("rb")
        self._lock = Semaphore()

    def send(self, message: Any) -> None:
        """Send one message. Raises OSError when the other end is gone."""
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock:
            self.sock.sendall(_HEADER.pack(len(data)) + data)

    def recv(self) -> Any:
        """Receive one message. Raises EOFError when the other end closed."""
        header = self._reader.read(_HEADER.size)
        if len(header) < _HEADER.size:
            raise EOFError("channel closed")
        (size,) = _HEADER.unpack(header)
        data = self._reader.read(size)
        if len(data) < size:
            raise EOFError("channel closed mid-message")
        return pickle.loads(data)

    def fileno(self) -> int:
        """The socket's descriptor."""
        return self.sock.fileno()

    def close(self) -> None:
        """Close this end."""
        try:
            self._reader.close()
        finally:
            self.sock.close()
