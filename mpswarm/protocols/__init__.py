"""User classes for protocols beyond HTTP/1.1 (gRPC, WebSocket)."""

from __future__ import annotations
