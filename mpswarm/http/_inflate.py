"""gzip and deflate bodies inflated under a cap: a gzip bomb (1 MB that inflates to 1 GiB)
costs the cap, not the gigabyte.

FastHttpUser's client inflates with these; HttpUser's leaves it to urllib3, which (since 2.6)
inflates no more than each ``read(amt)`` asks for.
"""

from __future__ import annotations

import io
import zlib

from mpswarm.http._errors import BodyTooLarge, BodyUndecodable
from mpswarm.http._limits import body_too_large

# Output by steps of at most _STEP from input slices of at most _SLICE: a bomb is stopped one
# byte past the cap, holding the cap and one step; zlib copies what a step leaves of its
# input, so a slice, not the whole body, is copied per step.
_STEP = 1024 * 1024
_SLICE = 64 * 1024


class Inflater:
    """gzip or deflate decompression that stops at a size, as the body arrives or at once."""

    __slots__ = ("_encoding", "_fresh", "_obj")

    def __init__(self, encoding: str) -> None:
        self._encoding = encoding
        self._obj = zlib.decompressobj(
            16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
        )
        self._fresh = True  # nothing decoded yet: deflate may still turn out to be raw

    @property
    def tail(self) -> bytes:
        """Input not decompressed yet because the last call reached its size."""
        return self._obj.unconsumed_tail

    def inflate(self, data: bytes | memoryview, size: int) -> bytes:
        """At most ``size`` bytes decompressed from ``data`` (and what an earlier call left)."""
        data = self._obj.unconsumed_tail + data if self._obj.unconsumed_tail else data
        try:
            out = self._obj.decompress(data, size)
        except zlib.error as exc:
            if not (self._fresh and self._encoding == "deflate"):
                raise BodyUndecodable(
                    f"BadResponse: cannot decode the {self._encoding} body: {exc}"
                ) from None
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)  # raw deflate, as some servers send
            self._fresh = False
            return self.inflate(data, size)
        self._fresh = False
        return out

    def finish(self) -> bytes:
        """What is left once the input has ended."""
        try:
            return self._obj.flush()
        except zlib.error as exc:
            raise BodyUndecodable(
                f"BadResponse: cannot decode the {self._encoding} body: {exc}"
            ) from None


def decompress(content: bytes, encoding: str, limit: int) -> bytes:
    """The decoded body, inflated step by step so that a bomb stops just past ``limit``.

    Input goes in by slices and output comes out by steps: zlib copies what a step leaves of
    its input, and at most a slice is left (a whole body left for each step of a 1 MB bomb
    of 64 MiB would be copied 64 times).
    """
    inflater = Inflater(encoding)
    if len(content) <= _SLICE:
        out = inflater.inflate(content, _STEP)
        if not inflater.tail:  # the common case: a small body, inflated in one call
            out += inflater.finish()
            if len(out) > limit:
                raise BodyTooLarge(body_too_large(limit, decompressed=True))
            return out
        at = len(content)
    else:
        out = inflater.inflate(memoryview(content)[:_SLICE], _STEP)
        at = _SLICE
    buffer = io.BytesIO()  # one buffer, counted as it grows
    buffer.write(out)
    del out
    view = memoryview(content)
    while buffer.tell() <= limit:
        room = min(_STEP, limit + 1 - buffer.tell())
        if inflater.tail:
            buffer.write(inflater.inflate(b"", room))
        elif at < len(content):
            buffer.write(inflater.inflate(view[at : at + _SLICE], room))
            at += _SLICE
        else:
            buffer.write(inflater.finish())
            break
    if buffer.tell() > limit:
        raise BodyTooLarge(body_too_large(limit, decompressed=True))
    return buffer.getvalue()
