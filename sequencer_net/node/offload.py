"""Where a node's blocking work runs: small jobs on the event loop, large ones in a thread.

Why: a trip to a worker thread is not free. Under load the hand-off there and
back took ~1.6 ms (p50; p90 ~5 ms) while the event loop and the crypto
threads competed for the GIL, more than the job itself when the job is small: a
safety-state write (~0.3-0.8 ms), a few signature checks (~35 µs each), the
shares of a block of a few transactions. Every such trip sits on the path from
submission to decryption. A job of up to ``INLINE_WORK_US`` runs inline; a
larger one runs in a worker thread (libsecp256k1, libsodium and SQLite release
the GIL there, so the loop keeps serving consensus meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import trio

T = TypeVar("T")

INLINE_WORK_US = 1_000  # the most work the event loop does itself per job


async def run_inline(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` on the event loop (after a checkpoint, like any await)."""
    await trio.lowlevel.checkpoint()
    return fn(*args)


async def run_sized(fn: Callable[..., T], *args: Any, cost_us: float) -> T:
    """Run ``fn`` inline if its estimated cost is small, else in a worker thread."""
    if cost_us <= INLINE_WORK_US:
        return await run_inline(fn, *args)
    return await trio.to_thread.run_sync(fn, *args)
