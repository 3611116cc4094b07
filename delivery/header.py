"""The batch header validators sign after decrypting a block, and its certificate.

A committed block is certified by consensus before anyone can read it; what
it *decrypts to* is certified separately: each validator that opened block
``h`` signs ``BatchHeader`` (domain ``seqnet/batch-header/v1``), and a quorum of
identical signatures is a :class:`BatchCertificate`. The header commits to
every opened transaction through ``namespace_root`` (see ``delivery.nmt``) and
to the previous batch through ``parent_batch_hash``, so a rollup holding one
certified header can check any namespace slice of that height and walk the
chain of batches back.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass
from typing import Annotated, ClassVar

from sequencer_net.base import codec
from sequencer_net.base.codec import Digest, IntRange, MaxItems, Signature, Size
from sequencer_net.base.committee import Committee
from sequencer_net.base.signing import SIGNER_INDEX, sign_bytes

Height = Annotated[int, IntRange(1, 2**62)]
MAX_CERT_SIGNATURES = 1024
BATCH_HASH_DOMAIN = b"seqnet/batch/v1\x00"
GENESIS_BATCH_DOMAIN = b"seqnet/batch-genesis/v1\x00"


class Unverified(ValueError):
    """Something a node served that does not verify; ``reason`` is metric-friendly."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class BatchHeader:
    """What the opened batch of one committed block is, in 32 bytes per field."""

    DOMAIN: ClassVar[str] = "seqnet/batch-header/v1"
    chain_id: Annotated[str, Size(max=64)]
    height: Height
    block_hash: Digest  # the committed consensus block this batch opens
    namespace_root: Digest  # root of the namespaced Merkle tree over its transactions
    leaf_count: Annotated[int, IntRange(0, 2**32)]  # transactions in the tree
    parent_batch_hash: Digest  # batch_hash of height - 1 (genesis_batch_hash at height 1)


def batch_hash(header: BatchHeader) -> bytes:
    """``SHA-256("seqnet/batch/v1" || 0x00 || cbor(header))``: a header's identity."""
    return hashlib.sha256(BATCH_HASH_DOMAIN + codec.encode(header)).digest()


def genesis_batch_hash(chain_id: str) -> bytes:
    """The parent of the batch at height 1."""
    return hashlib.sha256(GENESIS_BATCH_DOMAIN + chain_id.encode()).digest()


@dataclass(frozen=True, slots=True)
class BatchCertificate:
    """A quorum of validators' signatures over one header, sorted by signer."""

    header: BatchHeader
    signatures: Annotated[
        tuple[tuple[Annotated[int, SIGNER_INDEX], Signature], ...], MaxItems(MAX_CERT_SIGNATURES)
    ]


def verify_certificate(committee: Committee, cert: BatchCertificate) -> None:
    """Raise :class:`Unverified` unless a quorum of distinct committee members signed it."""
    header = cert.header
    if header.chain_id != committee.chain_id:
        raise Unverified("wrong-chain", f"header for {header.chain_id!r}")
    signers = [s for s, _ in cert.signatures]
    if any(b <= a for a, b in itertools.pairwise(signers)):
        raise Unverified("bad-certificate", "signers not strictly increasing")
    if len(signers) < committee.quorum:
        raise Unverified("short-certificate", f"{len(signers)} < quorum {committee.quorum}")
    message = sign_bytes(header, committee.chain_id)
    for signer, signature in cert.signatures:
        if not committee.verify(signer, message, signature):
            raise Unverified("bad-certificate", f"signature of validator {signer}")
