"""Local order reports: what one validator saw, and when, signed.

A report lists ``(digest, local_time_ms)`` for every transaction the node has
seen and not yet seen ordered, in the order it saw them. Reports ride on the
node's votes and timeouts to the next leader, who must put ``n - f`` of them in
its proposal. ``seq`` grows with the round (``3·round + kind``), so a report can
never be replayed into a later block, and a restarted node needs no stored
counter to stay monotonic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, ClassVar

from sequencer_net.base.codec import Digest, IntRange, MaxItems
from sequencer_net.base.signing import SIGNER_INDEX

MAX_REPORT_ENTRIES = 8192

SEQ_PROPOSAL, SEQ_VOTE, SEQ_TIMEOUT = 0, 1, 2

Millis = Annotated[int, IntRange(0, 2**53)]


@dataclass(frozen=True, slots=True)
class OrderReport:
    """Node ``node``'s view: digests it has seen but not yet seen ordered."""

    DOMAIN: ClassVar[str] = "seqnet/order-report/v1"
    node: Annotated[int, SIGNER_INDEX]
    seq: Annotated[int, IntRange(0, 2**62)]
    entries: Annotated[tuple[tuple[Digest, Millis], ...], MaxItems(MAX_REPORT_ENTRIES)]

    def __post_init__(self) -> None:
        if len({d for d, _ in self.entries}) != len(self.entries):
            raise ValueError("a digest appears twice in one report")

    def times(self) -> dict[bytes, int]:
        return dict(self.entries)


def report_seq(round_: int, kind: int) -> int:
    """Strictly increasing across rounds; distinct for proposal, vote and timeout."""
    return 3 * round_ + kind
