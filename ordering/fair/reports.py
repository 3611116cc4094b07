"""Local order reports: what one validator saw, and when, signed.

A report lists ``(digest, local_time_ms)`` for every transaction the node has
seen and not yet seen ordered, in the order it saw them. On the wire the list is
two byte strings, the 32-byte digests back to back and the times as 8-byte
big-endian integers: a report of thousands of entries then decodes and verifies
as two strings, not thousands of CBOR arrays (a node under load reports every
pending transaction on every vote). Reports ride on the
node's votes and timeouts to the next leader, who must put ``n - f`` of them in
its proposal. ``seq`` grows with the round (``3·round + kind``), so a report can
never be replayed into a later block, and a restarted node needs no stored
counter to stay monotonic.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Annotated, ClassVar

from sequencer_net.base.codec import IntRange, Size
from sequencer_net.base.signing import SIGNER_INDEX

MAX_REPORT_ENTRIES = 8192
DIGEST_BYTES = 32
TIME_BYTES = 8
MAX_MILLIS = 2**53

SEQ_PROPOSAL, SEQ_VOTE, SEQ_TIMEOUT = 0, 1, 2


@dataclass(frozen=True)
class OrderReport:
    """Node ``node``'s view: digests it has seen but not yet seen ordered, and when.

    ``digests`` holds 32-byte digests back to back; ``times`` holds each one's
    local time in milliseconds, 8 bytes big-endian, in the same order.
    """

    DOMAIN: ClassVar[str] = "seqnet/order-report/v2"
    node: Annotated[int, SIGNER_INDEX]
    seq: Annotated[int, IntRange(0, 2**62)]
    digests: Annotated[bytes, Size(max=DIGEST_BYTES * MAX_REPORT_ENTRIES)]
    times: Annotated[bytes, Size(max=TIME_BYTES * MAX_REPORT_ENTRIES)]

    def __post_init__(self) -> None:
        count, rest = divmod(len(self.digests), DIGEST_BYTES)
        if rest:
            raise ValueError(f"digests must be {DIGEST_BYTES}-byte strings back to back")
        if len(self.times) != TIME_BYTES * count:
            raise ValueError(f"one {TIME_BYTES}-byte time per digest")
        d = self.digests
        digest_list = [d[i : i + DIGEST_BYTES] for i in range(0, len(d), DIGEST_BYTES)]
        time_list = list(struct.unpack(f">{count}Q", self.times))
        if len(set(digest_list)) != count:
            raise ValueError("a digest appears twice in one report")
        if count and max(time_list) > MAX_MILLIS:
            raise ValueError(f"a time above {MAX_MILLIS} ms")
        # views computed once (the fields are frozen); not fields, so not on the wire
        object.__setattr__(self, "_digest_list", digest_list)
        object.__setattr__(self, "_time_list", time_list)

    @classmethod
    def of(cls, node: int, seq: int, entries: Iterable[tuple[bytes, int]]) -> OrderReport:
        """A report from ``(digest, local_time_ms)`` pairs in the order seen."""
        pairs = list(entries)
        times = struct.pack(f">{len(pairs)}Q", *(t for _, t in pairs))
        return cls(node, seq, b"".join(d for d, _ in pairs), times)

    def digest_list(self) -> list[bytes]:
        """The digests in the order seen."""
        return self._digest_list  # type: ignore[attr-defined,no-any-return]

    def digest_set(self) -> frozenset[bytes]:
        """The digests, for membership tests (built on first use)."""
        held: frozenset[bytes] | None = getattr(self, "_digest_set", None)
        if held is None:
            held = frozenset(self.digest_list())
            object.__setattr__(self, "_digest_set", held)
        return held

    def time_list(self) -> list[int]:
        """Their local times, in the same order."""
        return self._time_list  # type: ignore[attr-defined,no-any-return]

    @property
    def entries(self) -> tuple[tuple[bytes, int], ...]:
        """``(digest, local_time_ms)`` pairs in the order seen."""
        return tuple(zip(self.digest_list(), self.time_list(), strict=True))

    def times_by_digest(self) -> dict[bytes, int]:
        return dict(zip(self.digest_list(), self.time_list(), strict=True))


def report_seq(round_: int, kind: int) -> int:
    """Strictly increasing across rounds; distinct for proposal, vote and timeout."""
    return 3 * round_ + kind
