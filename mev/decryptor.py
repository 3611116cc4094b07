"""A validator's decryption duties: shares for committed batches, then opening them."""

from __future__ import annotations

from mev.combine import Opening, open_batch
from mev.committed import CommittedBatch
from mev.keys import KeyShare, ThresholdPublicKey
from mev.shares import ShareBatch, make_share_batch


class Decryptor:
    """A validator's decryption duties: shares for committed batches, then opening them."""

    def __init__(self, key: KeyShare, public: ThresholdPublicKey, chain_id: str) -> None:
        self._key, self.public, self.chain_id = key, public, chain_id

    def share(self, batch: CommittedBatch) -> ShareBatch:
        return make_share_batch(self._key, self.public, batch)

    def open(self, batch: CommittedBatch, shares: dict[int, ShareBatch]) -> Opening:
        """Plaintexts of the decryptable ciphertexts (None where the payload is invalid)."""
        return open_batch(self.public, self.chain_id, batch.batch_id, batch.decryptable, shares)
