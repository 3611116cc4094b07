"""A transaction's receipt: its place in the committed order, verifiable from the genesis alone.

Why: a submitter wants proof, from no one's word, that its ciphertext was
ordered — at which height and position — and that this order is final. The
order is fixed by consensus while the transaction is still encrypted (shares
are released only for committed blocks), so a receipt is a commitment to the
order made before anyone could read the transaction. Once the batch is opened
and certified, the receipt can also carry the plaintext with its inclusion
proof in the certified batch.

Theory of operation: a receipt carries

- the committed ``Block`` that ordered the ciphertext (its payload is the
  ``FairPayload`` whose ``order`` lists the digests) and the quorum
  certificate (QC) for it;
- the commit proof by the two-chain rule: the blocks above it, each the child
  of the one before (``parent_qc`` names it), up to a block certified in the
  round right after its parent's, with the QC of that last block. Usually this
  is one block, the child at ``height + 1`` in ``round + 1``. When rounds
  timed out above the block, it was committed as an ancestor of a later block
  and the chain is longer (at most ``MAX_COMMIT_CHAIN`` blocks);
- the transaction's ``position`` in the block's order;
- once decrypted and certified: the batch certificate of that height, the
  transaction's ``Leaf`` and its inclusion proof (``delivery.nmt.prove_leaf``,
  the leaf's index in tree order).

A whole block is carried because its hash is over every byte of it; a Merkle
path to the position would be smaller but needs a root over the order inside
the block, which would change the consensus payload. See ``docs/delivery.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated

from delivery.header import BatchCertificate, Unverified, verify_certificate
from delivery.nmt import Leaf, RangeProof, verify_leaf
from ordering.fair.app import MAX_ORDER, FairPayload
from ordering.messages import MAX_PAYLOAD_BYTES, Block, QuorumCert, block_hash
from ordering.validation import Invalid, MessageValidator
from sequencer_net.base import codec
from sequencer_net.base.codec import MAX_MESSAGE_BYTES, DecodeError, IntRange, MaxItems
from sequencer_net.base.committee import Committee

MAX_COMMIT_CHAIN = 8  # blocks above the receipt's block in its commit proof
_BLOCK_BYTES = MAX_PAYLOAD_BYTES + 128 * 1024  # a block: its payload and its parent's QC
# the block, its commit chain, and the inclusion proof (at most one message's size)
MAX_RECEIPT_BYTES = (1 + MAX_COMMIT_CHAIN) * _BLOCK_BYTES + MAX_MESSAGE_BYTES


@dataclass(frozen=True, slots=True)
class Inclusion:
    """The opened transaction in its certified batch: a one-leaf ``NamespaceBatch``."""

    certificate: BatchCertificate
    leaf: Leaf
    proof: RangeProof  # the leaf's range in tree order


@dataclass(frozen=True, slots=True)
class Receipt:
    """A transaction's committed place in the order, with the proof that it is final (wire)."""

    block: Block  # the committed block that ordered the ciphertext
    certificate: QuorumCert  # certifies ``block``; the same QC as ``commit_chain[0].parent_qc``
    position: Annotated[int, IntRange(0, MAX_ORDER - 1)]  # in the block's FairPayload.order
    commit_chain: Annotated[tuple[Block, ...], MaxItems(MAX_COMMIT_CHAIN)]  # heights h+1, h+2, ...
    commit_certificate: QuorumCert  # certifies the last block of ``commit_chain``
    inclusion: Inclusion | None  # once the batch is opened and certified


@dataclass(frozen=True, slots=True)
class VerifiedReceipt:
    """What :func:`verify_receipt` accepted (not a wire type)."""

    height: int
    position: int
    block_hash: bytes
    decrypted: Leaf | None  # the opened transaction, if the receipt proved it


def commit_proof(
    commits: Sequence[tuple[Block, QuorumCert]],
) -> tuple[QuorumCert, tuple[Block, ...], QuorumCert] | None:
    """The shortest commit proof of ``commits[0]`` from committed blocks, or None.

    ``commits`` are consecutive committed blocks from the receipt's height up,
    each with a QC that certifies it. The proof ends at the first block
    certified in the round after its parent's; the block's own certificate is
    its child's ``parent_qc`` (a node may have stored another quorum for it).
    Returns ``(certificate, commit_chain, commit_certificate)``.
    """
    blocks = [block for block, _ in commits[: MAX_COMMIT_CHAIN + 1]]
    for j in range(1, len(blocks)):
        if blocks[j].round == blocks[j - 1].round + 1:
            return blocks[1].parent_qc, tuple(blocks[1 : j + 1]), commits[j][1]
    return None


def verify_receipt(committee: Committee, receipt: Receipt, digest: bytes) -> VerifiedReceipt:
    """Raise :class:`Unverified` unless ``receipt`` proves ``digest`` committed where it says.

    Checks, in order: the block's QC (``bad-qc``) and that it names the block
    (``wrong-block``); the commit chain: each block the child of the one
    before, each QC valid (``bad-qc``), the last block certified in the round
    after its parent's (``not-committed``); the block's payload
    (``bad-payload``) and the digest at ``position`` (``wrong-position`` if
    the digest is elsewhere in the block, ``wrong-digest`` if nowhere); then,
    if present, the inclusion: the batch certificate (``wrong-chain``,
    ``bad-certificate``, ``short-certificate``), that it opens this block
    (``wrong-block``), that the leaf is this transaction (``wrong-leaf``) and
    its proof (``bad-proof``).
    """
    qcs = MessageValidator(committee)
    block = receipt.block
    digest_of_block = block_hash(block)
    _check_qc(qcs, receipt.certificate)
    if not _certifies(receipt.certificate, block, digest_of_block):
        raise Unverified("wrong-block", "the certificate is not the block's")
    _check_commit(qcs, receipt)
    order = _order(block)
    position = receipt.position
    if position >= len(order) or order[position] != digest:
        if digest in order:
            raise Unverified("wrong-position", f"not at position {position}")
        raise Unverified("wrong-digest", f"not ordered by block {block.height}")
    leaf = None if receipt.inclusion is None else _check_inclusion(committee, receipt, digest)
    return VerifiedReceipt(block.height, position, digest_of_block, leaf)


def _check_commit(qcs: MessageValidator, receipt: Receipt) -> None:
    """The two-chain rule, over the block and its commit chain."""
    chain = receipt.commit_chain
    if not chain:
        raise Unverified("not-committed", "no commit proof")
    if chain[0].parent_qc != receipt.certificate:
        raise Unverified("not-committed", "the commit proof does not extend the block")
    parent = receipt.block
    for i, child in enumerate(chain):
        if child.height != parent.height + 1:
            raise Unverified("not-committed", f"block {i} of the proof is not a child")
        if i > 0:
            if not _certifies(child.parent_qc, parent, block_hash(parent)):
                raise Unverified("not-committed", f"block {i} of the proof is not a child")
            _check_qc(qcs, child.parent_qc)
        parent = child
    last = chain[-1]
    if not _certifies(receipt.commit_certificate, last, block_hash(last)):
        raise Unverified("not-committed", "the commit certificate is not the last block's")
    _check_qc(qcs, receipt.commit_certificate)
    before = chain[-2] if len(chain) > 1 else receipt.block
    if last.round != before.round + 1:
        raise Unverified("not-committed", f"round {last.round} does not follow {before.round}")


def _check_inclusion(committee: Committee, receipt: Receipt, digest: bytes) -> Leaf:
    inclusion = receipt.inclusion
    assert inclusion is not None
    verify_certificate(committee, inclusion.certificate)
    header = inclusion.certificate.header
    if header.block_hash != block_hash(receipt.block) or header.height != receipt.block.height:
        raise Unverified("wrong-block", "the batch certificate is for another block")
    if inclusion.leaf.digest != digest:
        raise Unverified("wrong-leaf", "the leaf is another transaction")
    verify_leaf(header.namespace_root, header.leaf_count, inclusion.leaf, inclusion.proof)
    return inclusion.leaf


def _certifies(qc: QuorumCert, block: Block, digest: bytes) -> bool:
    return qc.block_hash == digest and qc.round == block.round and qc.height == block.height


def _check_qc(qcs: MessageValidator, qc: QuorumCert) -> None:
    try:
        qcs.check_qc(qc)
    except Invalid as exc:
        raise Unverified("bad-qc", str(exc)) from None


def _order(block: Block) -> tuple[bytes, ...]:
    try:
        return codec.decode(FairPayload, block.payload).order
    except DecodeError as exc:
        raise Unverified("bad-payload", str(exc)) from None


def decode_receipt(data: bytes) -> Receipt:
    """Strictly decode canonical CBOR; raise :class:`Unverified` (``decode``) on anything else."""
    try:
        return codec.decode(Receipt, data, max_bytes=MAX_RECEIPT_BYTES)
    except DecodeError as exc:
        raise Unverified("decode", str(exc)) from None
