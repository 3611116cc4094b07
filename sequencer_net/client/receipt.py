"""A transaction's receipt from any node, verified from the genesis alone.

A submitter trusts no node about where its transaction went. The receipt
(``delivery.receipt``) carries the committed block that ordered the
ciphertext, its quorum certificate and the commit proof (the block's child,
certified in the next round), so the committee of the genesis is all it takes
to check that the transaction is final at that height and position; once the
batch is opened and certified it also proves the plaintext.
"""

from __future__ import annotations

from delivery.receipt import MAX_RECEIPT_BYTES, VerifiedReceipt, decode_receipt, verify_receipt
from sequencer_net.client.http import ClientError, get_cbor
from sequencer_net.node.genesis import Genesis

FETCH_TIMEOUT_S = 5.0
DIGEST_BYTES = 32


def receipt_path(digest: bytes) -> str:
    """The HTTP resource of a transaction's receipt."""
    return f"/v1/transactions/{digest.hex()}/receipt"


def fetch_receipt(
    genesis: Genesis, digest: bytes | str, node: str, timeout_s: float = FETCH_TIMEOUT_S
) -> VerifiedReceipt:
    """The receipt of ``digest`` (bytes, or hex) from ``node`` (host:port), verified.

    Raises :class:`ClientError` if the node does not answer or refuses (status
    404: not committed yet, or its commit proof not stored yet),
    :class:`delivery.header.Unverified` if what it serves does not verify.
    """
    raw = _digest(digest)
    data = get_cbor(node, receipt_path(raw), MAX_RECEIPT_BYTES, timeout_s)
    return verify_receipt(genesis.committee(), decode_receipt(data), raw)


def _digest(digest: bytes | str) -> bytes:
    if isinstance(digest, str):
        try:
            digest = bytes.fromhex(digest)
        except ValueError:
            raise ClientError(f"digest {digest!r} is not hex") from None
    if len(digest) != DIGEST_BYTES:
        raise ClientError(f"a digest is {DIGEST_BYTES} bytes, not {len(digest)}")
    return digest
