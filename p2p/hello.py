"""The genesis hello: the first frame each way on every seqnet stream.

Why: the peer-id allow-list says *who* is on the other end, not *which
network* they think they are in. A validator started from an edited genesis
(another threshold, another key) has the right peer id and would otherwise be
heard. So both ends of each stream first send ``HELLO_TAG + genesis digest``
and read the other's; a stream whose hello differs is reset before any
consensus, transaction, share or sync frame is read or written, and each end
counts the refusal. Both ends write first, then read: no round trip is added
to the dialer's wait beyond one frame, and neither end can deadlock.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import trio

from p2p.framing import ByteStream, FrameError, FrameReader, frame

HELLO_TAG = b"seqnet-hello/1:"
HELLO_TIMEOUT_S = 5.0


class GenesisMismatch(Exception):
    """The peer's hello names another genesis (or is not a hello at all)."""


def hello_frame(genesis_id: bytes) -> bytes:
    """The payload both ends send: a fixed tag and the genesis digest."""
    return HELLO_TAG + genesis_id


def committee_id(peer_ids: Sequence[str]) -> bytes:
    """Stand-in genesis id for hosts not given one: at least the committee must match."""
    return hashlib.sha256("\n".join(["seqnet-committee/1", *peer_ids]).encode()).digest()


async def exchange_hello(
    stream: ByteStream, reader: FrameReader, mine: bytes, timeout_s: float = HELLO_TIMEOUT_S
) -> None:
    """Send our hello, read theirs; raise unless they are byte-for-byte equal.

    Raises :class:`GenesisMismatch` for a different hello and
    :class:`~p2p.framing.FrameError` when none arrives within ``timeout_s``.
    """
    await stream.write(frame(mine))
    try:
        with trio.fail_after(timeout_s):
            theirs = await reader.next()
    except trio.TooSlowError:
        raise FrameError(f"no hello within {timeout_s} s") from None
    if theirs is None:
        raise FrameError("stream closed before the hello")
    if theirs != mine:
        raise GenesisMismatch(f"peer's genesis is {_describe(theirs)}, ours {_describe(mine)}")


def _describe(hello: bytes) -> str:
    if not hello.startswith(HELLO_TAG):
        return "unknown (not a hello)"
    return hello[len(HELLO_TAG) :].hex()[:16]
