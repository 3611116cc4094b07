"""Byzantine behaviours, as interceptors around an otherwise honest node.

A Byzantine validator runs the honest core (so it stays a plausible participant)
and an adversary rewrites what it sends: equivocating proposals, votes for
everything, withheld messages, broken signatures, replays of old traffic,
garbage bytes, timeouts that lie about the highest QC. Twins are not an
interceptor: the engine runs two honest instances with one key.
"""

from __future__ import annotations

import random
from dataclasses import replace

from ordering.leader import leader_of
from ordering.messages import (
    CONSENSUS,
    Block,
    ConsensusMessage,
    Proposal,
    ProposalData,
    Timeout,
    TimeoutData,
    Vote,
    VoteData,
    block_hash,
    genesis_qc,
)
from sequencer_net.base.committee import Committee
from sequencer_net.base.signing import S, Signed, SigningKey

Outgoing = list[tuple[int, bytes]]


class Adversary:
    """Honest behaviour; subclasses rewrite traffic."""

    def __init__(
        self, index: int, committee: Committee, key: SigningKey, rng: random.Random
    ) -> None:
        self.index, self.committee, self.key, self.rng = index, committee, key, rng
        self.setup()

    def setup(self) -> None:
        """Per-run choices of a behaviour (drawn from the run's RNG)."""

    def outgoing(self, dests: list[int], message: ConsensusMessage) -> Outgoing:
        data = CONSENSUS.encode(message)
        return [(d, data) for d in dests]

    def on_receive(self, sender: int, data: bytes) -> Outgoing:
        return []

    def _sign(self, statement: S) -> Signed[S]:
        return self.key.sign(statement, self.committee.chain_id, self.index)

    def _others(self) -> list[int]:
        return [i for i in range(self.committee.n) if i != self.index]


class Equivocate(Adversary):
    """As leader, send one block to some validators and a conflicting one to the rest."""

    def outgoing(self, dests: list[int], message: ConsensusMessage) -> Outgoing:
        if not isinstance(message, Proposal):
            return super().outgoing(dests, message)
        block = replace(message.block, payload=message.block.payload + b"/evil")
        digest = block_hash(block)
        evil = Proposal(block, message.last_round_tc, self._sign(ProposalData(block.round, digest)))
        half = set(self.rng.sample(dests, len(dests) // 2))
        good, bad = CONSENSUS.encode(message), CONSENSUS.encode(evil)
        return [(d, bad if d in half else good) for d in dests]


class DoubleVote(Adversary):
    """Vote for every proposal seen, and for a made-up block too."""

    def outgoing(self, dests: list[int], message: ConsensusMessage) -> Outgoing:
        out = super().outgoing(dests, message)
        if isinstance(message, Vote):
            data = message.signed.statement
            fake = VoteData(
                bytes(self.rng.getrandbits(8) for _ in range(32)), data.round, data.height
            )
            out += [(d, CONSENSUS.encode(Vote(self._sign(fake)))) for d in dests]
        return out

    def on_receive(self, sender: int, data: bytes) -> Outgoing:
        try:
            message = CONSENSUS.decode(data)
        except ValueError:
            return []
        if not isinstance(message, Proposal):
            return []
        block: Block = message.block
        vote = VoteData(block_hash(block), block.round, block.height)
        to = leader_of(block.round + 1, self.committee.n)
        return [(to, CONSENSUS.encode(Vote(self._sign(vote))))]


class Withhold(Adversary):
    """Drop own proposals, votes, or both (chosen per run)."""

    def setup(self) -> None:
        self.kinds = self.rng.choice([(Proposal,), (Vote,), (Proposal, Vote)])

    def outgoing(self, dests: list[int], message: ConsensusMessage) -> Outgoing:
        if isinstance(message, self.kinds):
            return []
        return super().outgoing(dests, message)


class BadSignature(Adversary):
    """Flip a bit in the signature of about half the signed messages."""

    def outgoing(self, dests: list[int], message: ConsensusMessage) -> Outgoing:
        signed = getattr(message, "signed", None)
        if signed is not None and self.rng.random() < 0.5:
            sig = bytearray(signed.signature)
            sig[self.rng.randrange(64)] ^= 1 << self.rng.randrange(8)
            message = replace(message, signed=replace(signed, signature=bytes(sig)))
        return super().outgoing(dests, message)


class Replay(Adversary):
    """Resend old messages (its own and others') to random validators."""

    def setup(self) -> None:
        self.seen: list[bytes] = []

    def on_receive(self, sender: int, data: bytes) -> Outgoing:
        self.seen.append(data)
        if len(self.seen) < 20 or self.rng.random() > 0.3:
            return []
        old = self.seen[self.rng.randrange(len(self.seen) - 10)]
        return [(self.rng.choice(self._others()), old)]


class Garbage(Adversary):
    """Send malformed bytes: random, truncated, bit-flipped and oversized messages."""

    def outgoing(self, dests: list[int], message: ConsensusMessage) -> Outgoing:
        out = super().outgoing(dests, message)
        data = out[0][1] if out else b""
        choices = [
            bytes(self.rng.getrandbits(8) for _ in range(self.rng.randrange(1, 200))),
            data[: self.rng.randrange(len(data) or 1)],
            _flip(data, self.rng) if data else b"\xff",
            data + b"\x00",
        ]
        if dests:
            out.append((self.rng.choice(dests), self.rng.choice(choices)))
        return out


class StaleTimeout(Adversary):
    """Time out claiming only the genesis QC, to drag the TC's highest QC down."""

    def outgoing(self, dests: list[int], message: ConsensusMessage) -> Outgoing:
        if isinstance(message, Timeout):
            low = genesis_qc(self.committee.chain_id)
            round_ = message.signed.statement.round
            signed = self._sign(TimeoutData(round_, low.round))
            message = Timeout(signed, low, None)
        return super().outgoing(dests, message)


def _flip(data: bytes, rng: random.Random) -> bytes:
    buf = bytearray(data)
    buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    return bytes(buf)


ADVERSARIES: dict[str, type[Adversary]] = {
    "honest": Adversary,
    "twins": Adversary,
    "equivocate": Equivocate,
    "double-vote": DoubleVote,
    "withhold": Withhold,
    "bad-signature": BadSignature,
    "replay": Replay,
    "garbage": Garbage,
    "stale-timeout": StaleTimeout,
    # fair-ordering attacks live in the payload app (ops/sim/fair_adversary.py)
    "front-run": Adversary,
    "front-run-naive": Adversary,
    "censor": Adversary,
    "lie-report": Adversary,
    "withhold-report": Adversary,
}
