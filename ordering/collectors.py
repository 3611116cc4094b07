"""Vote and timeout collectors: signatures in, certificates out.

Each validator counts once per round — a second, different vote from the same
signer in a round is equivocation and is reported, not counted. A certificate is
produced exactly once, when its quorum is first reached.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from ordering.messages import QuorumCert, TimeoutCert, VoteData
from sequencer_net.base.signing import Verified


@dataclass
class VoteCollector:
    quorum: int
    _votes: dict[int, dict[bytes, dict[int, bytes]]] = field(default_factory=dict)
    _voted: dict[int, dict[int, bytes]] = field(default_factory=lambda: defaultdict(dict))
    _done: set[tuple[int, bytes]] = field(default_factory=set)

    def add(self, vote: Verified[VoteData]) -> tuple[QuorumCert | None, bool]:
        """Count ``vote``; return (a new QC if this vote completes one, equivocated?)."""
        data, signer = vote.statement, vote.signer
        earlier = self._voted[data.round].get(signer)
        if earlier is not None:
            return None, earlier != data.block_hash
        self._voted[data.round][signer] = data.block_hash
        by_hash = self._votes.setdefault(data.round, {}).setdefault(data.block_hash, {})
        by_hash[signer] = vote.signature
        key = (data.round, data.block_hash)
        if len(by_hash) < self.quorum or key in self._done:
            return None, False
        self._done.add(key)
        signatures = tuple(sorted(by_hash.items()))
        return QuorumCert(data, signatures), False

    def prune(self, below_round: int) -> None:
        for table in (self._votes, self._voted):
            for r in [r for r in table if r < below_round]:
                del table[r]
        self._done = {k for k in self._done if k[0] >= below_round}


@dataclass
class TimeoutCollector:
    quorum: int
    # round -> signer -> (high_qc_round, signature, high_qc)
    _timeouts: dict[int, dict[int, tuple[int, bytes, QuorumCert]]] = field(default_factory=dict)
    _done: set[int] = field(default_factory=set)

    def add(self, round_: int, signer: int, signature: bytes, high_qc: QuorumCert) -> None:
        by_signer = self._timeouts.setdefault(round_, {})
        if signer not in by_signer:
            by_signer[signer] = (high_qc.round, signature, high_qc)

    def count(self, round_: int) -> int:
        return len(self._timeouts.get(round_, {}))

    def take_certificate(self, round_: int) -> TimeoutCert | None:
        """A TC for ``round_`` the first time a quorum of timeouts is reached."""
        by_signer = self._timeouts.get(round_, {})
        if len(by_signer) < self.quorum or round_ in self._done:
            return None
        self._done.add(round_)
        ordered = sorted(by_signer.items())
        entries = tuple((s, hqr, sig) for s, (hqr, sig, _) in ordered)
        high_qc = max((qc for _, (_, _, qc) in ordered), key=lambda qc: qc.round)
        return TimeoutCert(round_, high_qc, entries)

    def prune(self, below_round: int) -> None:
        for r in [r for r in self._timeouts if r < below_round]:
            del self._timeouts[r]
        self._done = {r for r in self._done if r >= below_round}
