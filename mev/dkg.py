"""Dealerless key generation: joint-Feldman (Pedersen) DKG with complaints, sans I/O.

Theory of operation
-------------------
Every validator deals: it picks a random polynomial ``a_i`` of degree ``t-1``,
posts Feldman commitments ``C_ik = a_ik·G`` and privately sends ``s_ij = a_i(j+1)``
to each validator ``j``. Three phases follow, each ended by a ``PhaseEnded``
marker on the same ordered channel that carries the posts (the consensus log,
or any total-order broadcast), so every honest node sees the same posts before
the same marker:

1. DEAL: take the first dealing of each dealer (a second, different one
   disqualifies it) and the private shares.
2. COMPLAIN: a node whose share from dealer ``i`` is missing or does not match
   ``Σ_k C_ik (j+1)^k`` posts a complaint; the dealer answers by posting that
   share in the clear (harmless: it belongs to the complainer, and fewer than
   ``t`` complainers are dishonest).
3. JUSTIFY: a dealer with an unanswered or wrongly answered complaint is
   disqualified. The rest form QUAL; node ``j`` keeps ``x_j = Σ_{i∈QUAL} s_ij``,
   the public key is ``Σ_{i∈QUAL} C_i0``.

All honest nodes therefore end with the same QUAL, public key and verification
keys, and every honest dealer is in QUAL. As with any joint-Feldman DKG, a
rushing adversary can bias the public key's distribution slightly (Gennaro et
al. 1999); threshold ElGamal decryption stays secure under that bias.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Annotated

from mev.group import (
    ORDER,
    InvalidPoint,
    RandomBytes,
    base_mul,
    is_point,
    mul,
    point_sum,
    random_scalar,
    scalar_bytes,
    scalar_from_bytes,
)
from mev.kem import Scalar
from mev.keys import KeyShare, Point, ThresholdPublicKey, evaluate, evaluation_point
from sequencer_net.base.codec import IntRange, MaxItems

Index = Annotated[int, IntRange(0, 1023)]


class Phase(enum.IntEnum):
    DEAL = 1
    COMPLAIN = 2
    JUSTIFY = 3
    DONE = 4


# ------------------------------------------------------------ messages


@dataclass(frozen=True, slots=True)
class Dealing:
    """Posted: the dealer's Feldman commitments, ``t`` points."""

    dealer: Index
    commitments: Annotated[tuple[Point, ...], MaxItems(1024)]


@dataclass(frozen=True, slots=True)
class PrivateShare:
    """Sent privately from ``dealer`` to ``recipient`` over an encrypted channel."""

    dealer: Index
    recipient: Index
    share: Scalar


@dataclass(frozen=True, slots=True)
class Complaint:
    """Posted: ``accuser`` has no valid share from ``dealer``."""

    accuser: Index
    dealer: Index


@dataclass(frozen=True, slots=True)
class Justification:
    """Posted by ``dealer``: the share of ``accuser``, in the clear."""

    dealer: Index
    accuser: Index
    share: Scalar


Post = Dealing | Complaint | Justification

# ------------------------------------------------------------ events and actions


@dataclass(frozen=True, slots=True)
class Posted:
    """A post on the ordered channel; ``sender`` is authenticated by the channel."""

    sender: int
    message: Post


@dataclass(frozen=True, slots=True)
class PrivatelyReceived:
    sender: int
    message: PrivateShare


@dataclass(frozen=True, slots=True)
class PhaseEnded:
    phase: Phase


@dataclass(frozen=True, slots=True)
class PostMessage:
    message: Post


@dataclass(frozen=True, slots=True)
class SendPrivately:
    to: int
    message: PrivateShare


@dataclass(frozen=True, slots=True)
class DkgResult:
    public: ThresholdPublicKey
    share: KeyShare
    qualified: tuple[int, ...]
    disqualified: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Finished:
    result: DkgResult


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str


DkgEvent = Posted | PrivatelyReceived | PhaseEnded
DkgAction = PostMessage | SendPrivately | Finished | Failed

# ------------------------------------------------------------ the state machine


@dataclass
class Dkg:
    """One participant's DKG state."""

    n: int
    threshold: int
    me: int
    phase: Phase = Phase.DEAL
    dealings: dict[int, Dealing] = field(default_factory=dict)
    shares: dict[int, int] = field(default_factory=dict)  # dealer -> my share from it
    complaints: dict[int, set[int]] = field(default_factory=dict)  # dealer -> accusers
    answered: dict[int, set[int]] = field(default_factory=dict)  # dealer -> answered accusers
    disqualified: dict[int, str] = field(default_factory=dict)  # dealer -> why
    _polynomial: list[int] = field(default_factory=list, repr=False)

    def start(self, random_bytes: RandomBytes) -> list[DkgAction]:
        """Deal: post commitments and send every other validator its share."""
        self._polynomial = [random_scalar(random_bytes) for _ in range(self.threshold)]
        dealing = Dealing(self.me, tuple(base_mul(a) for a in self._polynomial))
        out: list[DkgAction] = [PostMessage(dealing)]
        for j in range(self.n):
            share = PrivateShare(self.me, j, scalar_bytes(self._share_for(j)))
            if j == self.me:
                self.shares[self.me] = self._share_for(j)
            else:
                out.append(SendPrivately(j, share))
        return out

    def _share_for(self, j: int) -> int:
        return evaluate(self._polynomial, evaluation_point(j))

    def handle(self, event: DkgEvent) -> list[DkgAction]:
        match event:
            case Posted(sender, Dealing() as d):
                return self._on_dealing(sender, d)
            case Posted(sender, Complaint() as c):
                return self._on_complaint(sender, c)
            case Posted(sender, Justification() as j):
                return self._on_justification(sender, j)
            case PrivatelyReceived(sender, share):
                return self._on_private_share(sender, share)
            case PhaseEnded(phase):
                return self._on_phase_end(phase)
        return []

    # -------------------------------------------------------- handlers

    def _on_dealing(self, sender: int, d: Dealing) -> list[DkgAction]:
        # [IGNORE] dealings after the deal phase, or posted on someone else's behalf
        if self.phase != Phase.DEAL or d.dealer != sender or not 0 <= sender < self.n:
            return []
        earlier = self.dealings.get(sender)
        if earlier is not None:
            if earlier != d:
                self.disqualified.setdefault(sender, "two different dealings")
            return []
        if len(d.commitments) != self.threshold or not all(is_point(c) for c in d.commitments):
            self.disqualified.setdefault(sender, "malformed commitments")
        self.dealings[sender] = d
        return []

    def _on_private_share(self, sender: int, p: PrivateShare) -> list[DkgAction]:
        if p.dealer != sender or p.recipient != self.me or self.phase > Phase.DEAL:
            return []
        value = scalar_from_bytes(p.share)
        if 0 < value < ORDER:
            self.shares.setdefault(sender, value)
        return []

    def _on_complaint(self, sender: int, c: Complaint) -> list[DkgAction]:
        if c.accuser != sender or self.phase not in (Phase.COMPLAIN, Phase.JUSTIFY):
            return []
        if c.dealer not in self.dealings:
            return []
        self.complaints.setdefault(c.dealer, set()).add(c.accuser)
        if c.dealer == self.me and self._polynomial:
            share = scalar_bytes(self._share_for(c.accuser))
            return [PostMessage(Justification(self.me, c.accuser, share))]
        return []

    def _on_justification(self, sender: int, j: Justification) -> list[DkgAction]:
        if j.dealer != sender or self.phase not in (Phase.COMPLAIN, Phase.JUSTIFY):
            return []
        if j.accuser not in self.complaints.get(j.dealer, set()):
            return []
        value = scalar_from_bytes(j.share)
        if not (0 < value < ORDER and self._share_is_valid(j.dealer, j.accuser, value)):
            self.disqualified.setdefault(j.dealer, f"bad justification for {j.accuser}")
            return []
        self.answered.setdefault(j.dealer, set()).add(j.accuser)
        if j.accuser == self.me:
            self.shares[j.dealer] = value
        return []

    def _on_phase_end(self, phase: Phase) -> list[DkgAction]:
        if phase != self.phase:
            return []
        if phase == Phase.DEAL:
            self.phase = Phase.COMPLAIN
            return self._complain()
        if phase == Phase.COMPLAIN:
            self.phase = Phase.JUSTIFY
            return []
        self.phase = Phase.DONE
        return [self._finish()]

    def _complain(self) -> list[DkgAction]:
        out: list[DkgAction] = []
        for dealer in sorted(self.dealings):
            if dealer == self.me or dealer in self.disqualified:
                continue
            share = self.shares.get(dealer)
            if share is None or not self._share_is_valid(dealer, self.me, share):
                self.shares.pop(dealer, None)
                out.append(PostMessage(Complaint(self.me, dealer)))
        return out

    def _finish(self) -> Finished | Failed:
        for dealer, accusers in sorted(self.complaints.items()):
            if accusers - self.answered.get(dealer, set()):
                self.disqualified.setdefault(dealer, "unanswered complaint")
        qualified = tuple(d for d in sorted(self.dealings) if d not in self.disqualified)
        if len(qualified) < self.threshold or any(d not in self.shares for d in qualified):
            return Failed(f"only {len(qualified)} qualified dealers, or a share is missing")
        secret = sum(self.shares[d] for d in qualified) % ORDER
        try:
            public = self._combined_public_key(qualified)
        except ValueError as exc:  # a degenerate (identity) key: never with an honest dealer
            return Failed(f"degenerate key: {exc}")
        if secret == 0:
            return Failed("combined share is zero")
        return Finished(
            DkgResult(
                public, KeyShare(self.me, secret), qualified, tuple(sorted(self.disqualified))
            )
        )

    # -------------------------------------------------------- arithmetic

    def _share_is_valid(self, dealer: int, recipient: int, share: int) -> bool:
        """Feldman check: ``share·G == Σ_k C_k · x^k`` at the recipient's point."""
        try:
            return base_mul(share) == self._commitment_at(self.dealings[dealer], recipient)
        except InvalidPoint:  # malformed commitments (their dealer is disqualified already)
            return False

    def _commitment_at(self, d: Dealing, recipient: int) -> bytes:
        """``Σ_k C_k · x^k``: the public image of the dealer's polynomial at the recipient."""
        x = evaluation_point(recipient)
        powers = [pow(x, k, ORDER) for k in range(len(d.commitments))]
        return point_sum(
            c if p == 1 else mul(p, c) for p, c in zip(powers, d.commitments, strict=True)
        )

    def _combined_public_key(self, qualified: tuple[int, ...]) -> ThresholdPublicKey:
        public_key = point_sum(self.dealings[d].commitments[0] for d in qualified)
        verification = tuple(
            point_sum(self._commitment_at(self.dealings[d], j) for d in qualified)
            for j in range(self.n)
        )
        return ThresholdPublicKey(self.threshold, public_key, verification)
