"""Messages between validators beyond consensus: transaction batches, shares, batch votes, sync.

Every family is framed ``[type_id, body]`` like consensus (``sequencer_net.base.codec``)
and travels on its own libp2p protocol (``p2p.host``). Each message is a batch:
one per tick per peer, never one per transaction or per share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from delivery.header import BatchCertificate, BatchHeader
from mev.kem import MAX_NAMESPACE_CHARS
from mev.mempool import MempoolLimits
from mev.shares import ShareBatch
from ordering.fair.app import MAX_ORDER
from ordering.messages import Block, QuorumCert
from sequencer_net.base import codec
from sequencer_net.base.codec import Digest, IntRange, MaxItems, Size
from sequencer_net.base.signing import Signed

MAX_TX_BATCH = 4096
MAX_SYNC_BLOCKS = 128
MAX_SYNC_RESPONSE_BYTES = 4 * 1024 * 1024
TxBytes = Annotated[bytes, Size(max=MempoolLimits().max_tx_bytes)]
Height = Annotated[int, IntRange(0, 2**63 - 1)]


@dataclass(frozen=True, slots=True)
class TxBatch:
    """Encrypted transactions a validator admitted since its last tick."""

    txs: Annotated[tuple[TxBytes, ...], MaxItems(MAX_TX_BATCH)]


@dataclass(frozen=True, slots=True)
class DecryptedTx:
    """One ordered transaction after decryption; ``plaintext`` None when it did not open."""

    namespace: Annotated[str, Size(max=MAX_NAMESPACE_CHARS)]
    digest: Digest
    plaintext: bytes | None


@dataclass(frozen=True, slots=True)
class DecryptedBatch:
    """A committed block's transactions in order, opened; ``keys[i]`` opens ``txs[i]``.

    The keys (``K = x·u`` per ciphertext, empty where none opened) let a node that
    missed the shares open the batch from any peer's copy: each key is checked
    against its ciphertext's key check, so a wrong one is caught at once.
    """

    height: Height
    block_hash: Digest
    txs: Annotated[tuple[DecryptedTx, ...], MaxItems(MAX_ORDER)]
    keys: Annotated[tuple[bytes, ...], MaxItems(MAX_ORDER)]


@dataclass(frozen=True, slots=True)
class ShareRequest:
    """Ask a validator to send its share batch for a committed block (again).

    Releasing shares of a committed block is safe. A node that missed them (a
    restart, a catch-up, frames dropped while it lagged) combines ``t`` verified
    share batches exactly as the others did, so it reaches their verdict even on
    a ciphertext whose payload opens to nothing (peers' stored keys cannot prove
    that one: its key matches no key check).
    """

    height: Height
    block_hash: Digest


@dataclass(frozen=True, slots=True)
class BatchVote:
    """A validator's signature over the header of a batch it opened (sent to every peer).

    ``signed.signer`` must be the validator that sends it; a quorum of identical
    headers is a :class:`~delivery.header.BatchCertificate`.
    """

    signed: Signed[BatchHeader]


@dataclass(frozen=True, slots=True)
class CertificateRequest:
    """Send me the batch certificate of ``height`` (or, lacking one, your vote for it)."""

    height: Annotated[int, IntRange(1, 2**62)]


@dataclass(frozen=True, slots=True)
class CertificateReply:
    """A batch certificate, sent to a peer that asked for its height."""

    certificate: BatchCertificate


@dataclass(frozen=True, slots=True)
class SyncRequest:
    """Committed blocks from ``from_height`` up (with certificates and opened batches)."""

    from_height: Height
    limit: Annotated[int, IntRange(1, MAX_SYNC_BLOCKS)]


@dataclass(frozen=True, slots=True)
class SyncedBlock:
    """A committed block, its certificate and, where the server has them, its opened batch
    and the batch certificate over that batch's header."""

    block: Block
    certificate: QuorumCert
    batch: DecryptedBatch | None
    batch_certificate: BatchCertificate | None = None


@dataclass(frozen=True, slots=True)
class SyncResponse:
    """Consecutive committed blocks; the requester verifies every certificate."""

    blocks: Annotated[tuple[SyncedBlock, ...], MaxItems(MAX_SYNC_BLOCKS + 1)]


TX = codec.Family("tx", [TxBatch])
# new types are appended: the ids of the old ones never change
SHARES = codec.Family(
    "shares", [ShareBatch, ShareRequest, BatchVote, CertificateRequest, CertificateReply]
)
AttestationMessage = BatchVote | CertificateRequest | CertificateReply
SYNC = codec.Family("sync", [SyncRequest, SyncResponse])
