"""Committed batches: the only input a decryption share can be made for.

Theory of operation: a :class:`CommittedBatch` can only be built from the
consensus core's ``Commit`` action, and only after checking that the block
hashes to the certified digest and that its certificate holds a quorum of valid
signatures. ``mev.shares.make_share_batch`` accepts nothing else, so no code
path — a leader's proposal, a mempool entry, a peer's request — can make a node
help decrypt a transaction before its order is final. Ciphertexts that fail
their check keep their position in the batch (it is part of the order) but are
never decrypted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from mev import kem
from mev.kem import Ciphertext, InvalidCiphertext
from mev.keys import ThresholdPublicKey
from ordering.events import Commit
from ordering.messages import block_hash
from ordering.validation import Invalid, MessageValidator
from sequencer_net.base import codec
from sequencer_net.base.codec import DecodeError, MaxItems


@dataclass(frozen=True, slots=True)
class EncryptedBatch:
    """A block payload of ciphertexts in their final order."""

    ciphertexts: Annotated[tuple[Ciphertext, ...], MaxItems(MAX_BATCH)]


MAX_BATCH = 16_384


class NotCommitted(ValueError):
    """Input that does not prove its block was certified by a quorum."""


_TOKEN = object()


class CommittedBatch:
    """The ciphertexts of a certified block, split into decryptable and invalid ones."""

    def __init__(
        self,
        height: int,
        batch_id: bytes,
        ciphertexts: list[Ciphertext],
        digests: list[bytes],
        valid: list[bool],
        token: object,
    ) -> None:
        if token is not _TOKEN:
            raise TypeError("a CommittedBatch is made only by CommittedBatch.from_commit()")
        self.height, self.batch_id = height, batch_id
        self.ciphertexts, self.digests, self.valid = ciphertexts, digests, valid

    @classmethod
    def from_commit(
        cls,
        commit: Commit,
        validator: MessageValidator,
        is_valid: Callable[[Ciphertext, bytes], bool],
        read_payload: Callable[[bytes], list[tuple[Ciphertext, bytes]]] | None = None,
    ) -> CommittedBatch:
        """Check the commit's certificate and payload; ``is_valid`` judges each ciphertext.

        ``is_valid(ct, digest)`` may reuse the mempool's checks (by digest);
        without them it is ``lambda ct, _: is_well_formed(public, chain_id, ct)``.
        ``read_payload`` extracts the ordered ciphertexts with their digests from
        the block payload (default: the payload is an :class:`EncryptedBatch`);
        it raises DecodeError.
        """
        if not isinstance(commit, Commit):
            raise NotCommitted(f"expected a consensus Commit, got {type(commit).__name__}")
        digest = block_hash(commit.block)
        if commit.block_hash != digest or commit.certificate.block_hash != digest:
            raise NotCommitted("certificate does not name this block")
        try:
            validator.check_qc(commit.certificate)
            pairs = (read_payload or _encrypted_batch)(commit.block.payload)
        except (Invalid, DecodeError) as exc:
            raise NotCommitted(str(exc)) from None
        valid = [is_valid(ct, d) for ct, d in pairs]
        cts, digests = [ct for ct, _ in pairs], [d for _, d in pairs]
        return cls(commit.block.height, digest, cts, digests, valid, _TOKEN)

    @property
    def decryptable(self) -> list[Ciphertext]:
        return [ct for ct, ok in zip(self.ciphertexts, self.valid, strict=True) if ok]


def _encrypted_batch(payload: bytes) -> list[tuple[Ciphertext, bytes]]:
    batch: EncryptedBatch = codec.decode(EncryptedBatch, payload)
    return [(ct, kem.digest(ct)) for ct in batch.ciphertexts]


def is_well_formed(public: ThresholdPublicKey, chain_id: str, ct: Ciphertext) -> bool:
    try:
        kem.check(public, chain_id, ct)
    except InvalidCiphertext:
        return False
    return True
