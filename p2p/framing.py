"""Length-prefixed frames on a byte stream, with a size cap and read deadlines.

A frame is a 4-byte big-endian length and that many bytes. The cap is checked
on the length *before* anything is buffered, and once a frame has started every
read has a deadline, so a peer can neither make us allocate without bound nor
park a task forever mid-frame (waiting *between* frames is normal on a
persistent stream and has no deadline).
"""

from __future__ import annotations

from typing import Protocol

import trio

MAX_FRAME_BYTES = 8 * 1024 * 1024
READ_TIMEOUT_S = 30.0


class FrameError(Exception):
    """The peer broke framing: oversized, truncated or silent for too long."""


class ByteStream(Protocol):
    async def read(self, n: int = -1) -> bytes: ...

    async def write(self, data: bytes) -> None: ...


def frame(payload: bytes) -> bytes:
    if len(payload) > MAX_FRAME_BYTES:
        raise FrameError(f"frame of {len(payload)} bytes exceeds {MAX_FRAME_BYTES}")
    return len(payload).to_bytes(4, "big") + payload


class FrameReader:
    """Reads whole frames from a stream that returns arbitrary chunks."""

    def __init__(
        self,
        stream: ByteStream,
        max_bytes: int = MAX_FRAME_BYTES,
        timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        self._stream, self._max, self._timeout = stream, max_bytes, timeout_s
        self._buffer = bytearray()

    async def next(self) -> bytes | None:
        """The next frame, or None when the peer closed cleanly between frames."""
        header = await self._exactly(4, eof_ok=True)
        if header is None:
            return None
        length = int.from_bytes(header, "big")
        if length > self._max:
            raise FrameError(f"peer announced a frame of {length} bytes (cap {self._max})")
        body = await self._exactly(length, eof_ok=False)
        assert body is not None
        return body

    async def _exactly(self, n: int, *, eof_ok: bool) -> bytes | None:
        while len(self._buffer) < n:
            idle = eof_ok and not self._buffer  # between frames: no deadline
            try:
                with trio.fail_after(float("inf") if idle else self._timeout):
                    chunk = await self._stream.read(max(n - len(self._buffer), 65536))
            except trio.TooSlowError:
                raise FrameError(f"peer silent for {self._timeout} s mid-frame") from None
            if not chunk:
                if eof_ok and not self._buffer:
                    return None
                raise FrameError("stream closed inside a frame")
            self._buffer += chunk
        out = bytes(self._buffer[:n])
        del self._buffer[:n]
        return out
