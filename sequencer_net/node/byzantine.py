"""Byzantine behaviour on purpose, for chaos tests on test networks only.

Why: the outside checkers must be shown to hold (or to catch a violation) with
real Byzantine validators, not only in the simulator. A node of a genesis
marked as a test network may be told, at start or at run time through its
admin endpoint, to misbehave. Everything happens on the way out, as a
malicious operator's patched node would: the node itself runs the honest
code, and this filter rewrites, drops or adds frames just before they leave.

Behaviours (``Misbehaviour`` fields):

- ``withhold_shares``: never send decryption share batches (nor answer requests);
- ``corrupt_shares``: send share batches whose every share is wrong;
- ``censor``: as leader, propose blocks without the transactions of this
  namespace (the fair order says they belong there, so honest replicas refuse);
- ``equivocate``: as leader, send every other peer a conflicting block (empty);
- ``lie_reports``: order reports that claim the newest transactions came first;
- ``garbage``: every 100 ms, a frame of random bytes on each protocol to each peer;
- ``reorder_batches`` (at start only): a BROKEN build, not an attack: the node
  stores and serves every decrypted batch in reverse order. Its history differs
  from everyone else's at every height with two or more transactions (its batch
  headers never get a quorum): the fork the chaos checkers must report.

Honest validators must stay safe and live through any of them from up to f
validators, and name the culprit in their metrics where they can.
"""

from __future__ import annotations

import dataclasses
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from mev import group
from mev.kem import Ciphertext
from mev.shares import ShareBatch
from ordering.fair.app import FairPayload
from ordering.fair.reports import OrderReport
from ordering.messages import CONSENSUS, Block, Proposal, ProposalData, Timeout, Vote, block_hash
from p2p.host import CONSENSUS_PROTOCOL, SHARES_PROTOCOL, TX_PROTOCOL
from sequencer_net.base import codec
from sequencer_net.base.codec import DecodeError
from sequencer_net.base.signing import Signed, SigningKey
from sequencer_net.node.wire import SHARES, DecryptedBatch

Post = Callable[[int, bytes, str], None]
GARBAGE_EVERY_S = 0.1
WRONG_SHARE = group.base_mul(7)  # a valid point: the batch decodes, only its proof fails


class BadMisbehaviour(ValueError):
    """A misbehaviour request that cannot be applied."""


@dataclass(frozen=True, slots=True)
class Misbehaviour:
    withhold_shares: bool = False
    corrupt_shares: bool = False
    censor: str | None = None  # a namespace
    equivocate: bool = False
    lie_reports: bool = False
    garbage: bool = False
    reorder_batches: bool = False  # read at start only

    @classmethod
    def from_json(cls, doc: Any) -> Misbehaviour:
        if not isinstance(doc, dict):
            raise BadMisbehaviour("expected a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(doc) - names)
        if unknown:
            raise BadMisbehaviour(f"unknown behaviour(s) {', '.join(unknown)}")
        for name, value in doc.items():
            if name == "censor":
                if value is not None and not (isinstance(value, str) and value):
                    raise BadMisbehaviour("censor: expected a namespace or null")
            elif type(value) is not bool:
                raise BadMisbehaviour(f"{name}: expected true or false")
        return cls(**doc)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def any(self) -> bool:
        return self != Misbehaviour()


class ByzantineOutbox:
    """Wraps a validator's ``post``: what it sends, rewritten per ``self.mode``."""

    def __init__(
        self,
        post: Post,
        peers: list[int],
        me: int,
        key: SigningKey,
        chain_id: str,
        mode: Misbehaviour = Misbehaviour(),
    ) -> None:
        self._post, self.peers, self.me = post, peers, me
        self._key, self._chain_id, self.mode = key, chain_id, mode
        self.rewritten = 0  # frames changed, dropped or added: the test can see it acted

    def post(self, peer: int, data: bytes, protocol: str) -> None:
        if not self.mode.any:
            return self._post(peer, data, protocol)
        try:
            out = self._rewrite(peer, data, protocol)
        except (DecodeError, ValueError):
            out = data  # not ours to understand: send as is
        if out is not data:
            self.rewritten += 1
        if out is not None:
            self._post(peer, out, protocol)
        return None

    async def run(self) -> None:
        """Send garbage while ``garbage`` is on."""
        protocols = (CONSENSUS_PROTOCOL, TX_PROTOCOL, SHARES_PROTOCOL)
        while True:
            await trio.sleep(GARBAGE_EVERY_S)
            if self.mode.garbage:
                for peer in self.peers:
                    for protocol in protocols:
                        self.rewritten += 1
                        self._post(peer, os.urandom(64), protocol)

    # ------------------------------------------------------------ rewriting

    def _rewrite(self, peer: int, data: bytes, protocol: str) -> bytes | None:
        if protocol == SHARES_PROTOCOL:
            return self._shares(data)
        if protocol == CONSENSUS_PROTOCOL:
            return self._consensus(peer, data)
        return data

    def _shares(self, data: bytes) -> bytes | None:
        message = SHARES.decode(data)
        if not isinstance(message, ShareBatch):
            return data
        if self.mode.withhold_shares:
            return None
        if self.mode.corrupt_shares:
            wrong = tuple(WRONG_SHARE for _ in message.shares)
            return SHARES.encode(dataclasses.replace(message, shares=wrong))
        return data

    def _consensus(self, peer: int, data: bytes) -> bytes:
        message = CONSENSUS.decode(data)
        if isinstance(message, Vote | Timeout) and self.mode.lie_reports and message.report:
            return CONSENSUS.encode(dataclasses.replace(message, report=self._lie(message.report)))
        if isinstance(message, Proposal) and message.block.proposer == self.me:
            block = message.block
            if self.mode.censor is not None:
                block = self._censored(block, self.mode.censor)
            if self.mode.equivocate and peer % 2 == 1:
                block = dataclasses.replace(block, payload=codec.encode(FairPayload((), (), ())))
            if block is not message.block:
                return CONSENSUS.encode(self._signed(message, block))
        return data

    def _signed(self, proposal: Proposal, block: Block) -> Proposal:
        statement = ProposalData(block.round, block_hash(block))
        signed = self._key.sign(statement, self._chain_id, self.me)
        return Proposal(block, proposal.last_round_tc, signed)

    def _censored(self, block: Block, namespace: str) -> Block:
        payload: FairPayload = codec.decode(FairPayload, block.payload)
        kept = [
            (d, tx)
            for d, tx in zip(payload.order, payload.txs, strict=True)
            if codec.decode(Ciphertext, tx).namespace != namespace
        ]
        if len(kept) == len(payload.order):
            return block
        order, txs = tuple(d for d, _ in kept), tuple(tx for _, tx in kept)
        censored = FairPayload(payload.reports, order, txs)
        return dataclasses.replace(block, payload=codec.encode(censored))

    def _lie(self, report_bytes: bytes) -> bytes:
        """Our report, re-signed, claiming the newest transactions arrived first."""
        signed: Signed[OrderReport] = codec.decode(Signed[OrderReport], report_bytes)
        report = signed.statement
        times = report.time_list()
        lying = struct.pack(f">{len(times)}Q", *reversed(times))
        forged = dataclasses.replace(report, times=lying)
        return codec.encode(self._key.sign(forged, self._chain_id, self.me), Signed[OrderReport])


def reordered(batch: DecryptedBatch) -> DecryptedBatch:
    """``batch`` with its transactions (and their keys) in reverse order: the broken build."""
    keys = tuple(reversed(batch.keys)) if len(batch.keys) == len(batch.txs) else batch.keys
    return dataclasses.replace(batch, txs=tuple(reversed(batch.txs)), keys=keys)
