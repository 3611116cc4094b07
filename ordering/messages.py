"""Consensus messages (the ``/seqnet/consensus/1`` family) and what they sign.

Signed statements are small (``VoteData``, ``TimeoutData``, ``ProposalData``) so
that certificates can carry them compactly and check them independently of the
message that delivered them. Blocks are named by the SHA-256 of their canonical
encoding; a block is authentic when a verified certificate names its hash.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated, ClassVar

from sequencer_net.base import codec
from sequencer_net.base.codec import Digest, IntRange, MaxItems, Signature, Size
from sequencer_net.base.signing import SIGNER_INDEX, Signed

Round = Annotated[int, IntRange(0, 2**62)]
Height = Annotated[int, IntRange(0, 2**62)]
SignerIndex = Annotated[int, SIGNER_INDEX]

MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
MAX_SIGNATURES = 1024
MAX_SYNC_BLOCKS = 64
MAX_REPORT_BYTES = 1024 * 1024

Report = Annotated[bytes, Size(max=MAX_REPORT_BYTES)]

GENESIS_ROUND = 0
GENESIS_HEIGHT = 0


@dataclass(frozen=True, slots=True)
class VoteData:
    """A validator's vote: 'block ``block_hash`` at ``height`` is valid in ``round``'."""

    DOMAIN: ClassVar[str] = "seqnet/vote/v1"
    block_hash: Digest
    round: Round
    height: Height


@dataclass(frozen=True, slots=True)
class TimeoutData:
    """A validator gives up on ``round``; its highest certified round so far."""

    DOMAIN: ClassVar[str] = "seqnet/timeout/v1"
    round: Round
    high_qc_round: Round


@dataclass(frozen=True, slots=True)
class ProposalData:
    """The leader of ``round`` proposes the block named ``block_hash``."""

    DOMAIN: ClassVar[str] = "seqnet/proposal/v1"
    round: Round
    block_hash: Digest


@dataclass(frozen=True, slots=True)
class QuorumCert:
    """A quorum of votes for one block: ``(signer, signature)`` sorted by signer."""

    vote: VoteData
    signatures: Annotated[tuple[tuple[SignerIndex, Signature], ...], MaxItems(MAX_SIGNATURES)]

    @property
    def round(self) -> int:
        return self.vote.round

    @property
    def block_hash(self) -> bytes:
        return self.vote.block_hash

    @property
    def height(self) -> int:
        return self.vote.height


@dataclass(frozen=True, slots=True)
class TimeoutCert:
    """A quorum of timeouts for ``round``, and the highest QC any of them reported.

    Each entry is ``(signer, high_qc_round, signature over TimeoutData)``; the
    leader of ``round + 1`` must extend a QC at least as high as ``high_qc``.
    """

    round: Round
    high_qc: QuorumCert
    entries: Annotated[tuple[tuple[SignerIndex, Round, Signature], ...], MaxItems(MAX_SIGNATURES)]


@dataclass(frozen=True, slots=True)
class Block:
    """A block of the chain: its parent is the block certified by ``parent_qc``."""

    height: Height
    round: Round
    proposer: SignerIndex
    parent_qc: QuorumCert
    payload: Annotated[bytes, Size(max=MAX_PAYLOAD_BYTES)]


@dataclass(frozen=True, slots=True)
class Proposal:
    """The leader's block for a round, justified by a TC when the last round failed."""

    block: Block
    last_round_tc: TimeoutCert | None
    signed: Signed[ProposalData]


@dataclass(frozen=True, slots=True)
class Vote:
    """A signed vote, sent to the leader of the next round.

    ``report`` is opaque to consensus: the payload layer's data for the next
    leader (the fair-ordering layer sends its signed order report here).
    """

    signed: Signed[VoteData]
    report: Report = b""


@dataclass(frozen=True, slots=True)
class Timeout:
    """A signed timeout with the certificates a lagging node needs to catch up.

    ``vote`` is the sender's vote in the same round, if it cast one: the vote went
    to the next leader only, and if that leader is down, everyone can still form
    the round's QC from the votes that ride on the timeouts.
    """

    signed: Signed[TimeoutData]
    high_qc: QuorumCert
    last_round_tc: TimeoutCert | None
    vote: Signed[VoteData] | None = None
    report: Report = b""


@dataclass(frozen=True, slots=True)
class BlockRequest:
    """Ask for the block ``block_hash`` and up to ``max_blocks - 1`` of its ancestors."""

    block_hash: Digest
    max_blocks: Annotated[int, IntRange(1, MAX_SYNC_BLOCKS)]


@dataclass(frozen=True, slots=True)
class BlockResponse:
    """Blocks from newest to oldest, each the parent of the one before."""

    blocks: Annotated[tuple[Block, ...], MaxItems(MAX_SYNC_BLOCKS)]


ConsensusMessage = Proposal | Vote | Timeout | BlockRequest | BlockResponse

CONSENSUS = codec.Family("consensus", [Proposal, Vote, Timeout, BlockRequest, BlockResponse])


def block_hash(block: Block) -> bytes:
    """The name of a block: SHA-256 over a domain tag and its canonical encoding."""
    return hashlib.sha256(b"seqnet/block/v1\x00" + codec.encode(block)).digest()


def genesis_hash(chain_id: str) -> bytes:
    """The name of the virtual block at height 0 that every chain starts from."""
    return hashlib.sha256(b"seqnet/genesis/v1\x00" + chain_id.encode()).digest()


def genesis_qc(chain_id: str) -> QuorumCert:
    """The certificate of the genesis block: known to all, signed by none."""
    return QuorumCert(VoteData(genesis_hash(chain_id), GENESIS_ROUND, GENESIS_HEIGHT), ())
