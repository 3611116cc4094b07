"""Threshold encryption of transactions: signed ElGamal over secp256k1.

Theory of operation
-------------------
To encrypt for the committee's key ``h`` a client picks ``r`` with ``u = rG`` of
even y (it negates ``r`` otherwise) and publishes the 32-byte x-coordinate of
``u``; the shared secret ``K = r·h`` is hashed with ``u`` into a 32-byte
XChaCha20-Poly1305 key and a 16-byte key check. The label binds the chain id,
the rollup namespace and the fingerprint of ``h``; the payload is sealed with
the label as associated data; and a BIP-340 Schnorr signature under the secret
``r`` covers a hash of the label, the key check and the sealed bytes. The
signature is a proof of knowledge of ``r`` bound to everything else in the
ciphertext, so a ciphertext can be neither mauled nor moved to another
namespace, chain or key, and nobody can reuse someone else's ``u`` (signed
ElGamal: CCA security in the random-oracle and generic-group models). Checking
one costs one BIP-340 verification. Validators jointly compute ``K = x·u`` from
decryption shares (``mev.shares``) only after the order is final.

The key check makes the symmetric key committing: a wrong ``K`` (from bad
shares) is detected before the AEAD is even tried, and no ciphertext can open
to two different plaintexts under two keys.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from typing import Annotated

import nacl.bindings as sodium
import nacl.exceptions

from mev.group import (
    X_BYTES,
    InvalidPoint,
    RandomBytes,
    even_y,
    framed,
    mul,
    random_scalar,
    schnorr_sign,
    schnorr_verify,
)
from mev.keys import ThresholdPublicKey
from sequencer_net.base import codec
from sequencer_net.base.codec import Size

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_NAMESPACE_CHARS = 64
TAG_BYTES = 16
NONCE = bytes(24)  # every ciphertext has a fresh key, so a fixed nonce is safe
LABEL_DOMAIN = "seqnet/label/v2"
KDF_DOMAIN = b"seqnet/kem/kdf/v2"
SIGNATURE_DOMAIN = b"seqnet/kem/signature/v2"

Scalar = Annotated[bytes, Size(exact=32)]
XOnly = Annotated[bytes, Size(exact=X_BYTES)]


class InvalidCiphertext(ValueError):
    """A ciphertext that must not be ordered or decrypted; ``reason`` is a metric label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Ciphertext:
    """An encrypted transaction for one rollup namespace (wire and storage form)."""

    namespace: Annotated[str, Size(max=MAX_NAMESPACE_CHARS)]
    u: XOnly
    key_check: Annotated[bytes, Size(exact=TAG_BYTES)]
    sealed: Annotated[bytes, Size(max=MAX_PAYLOAD_BYTES + TAG_BYTES)]
    signature: Annotated[bytes, Size(exact=64)]


@functools.lru_cache(maxsize=1024)
def label(chain_id: str, namespace: str, key_fingerprint: bytes) -> bytes:
    """What a ciphertext is bound to: it decrypts for this chain, namespace and key only."""
    return codec.dumps_plain([LABEL_DOMAIN, chain_id, namespace, key_fingerprint])


def signed_message(the_label: bytes, key_check: bytes, sealed: bytes) -> bytes:
    """The 32 bytes the BIP-340 signature covers (``u`` is in BIP-340's own challenge)."""
    return hashlib.sha256(framed(SIGNATURE_DOMAIN, (the_label, key_check, sealed))).digest()


def digest(ct: Ciphertext) -> bytes:
    """The ciphertext's identity in the mempool and in blocks."""
    return digest_of_encoding(codec.encode(ct))


def digest_of_encoding(data: bytes) -> bytes:
    """``digest`` from the canonical encoding itself (no decode needed to deduplicate)."""
    return hashlib.sha256(b"seqnet/ciphertext/v1\x00" + data).digest()


def derive_keys(shared: bytes, u: bytes) -> tuple[bytes, bytes]:
    """(AEAD key, key check) from the shared point ``K`` (33 bytes) and the x-only ``u``."""
    okm = hashlib.sha512(KDF_DOMAIN + shared + u).digest()
    return okm[:32], okm[32 : 32 + TAG_BYTES]


def encrypt(
    pk: ThresholdPublicKey,
    chain_id: str,
    namespace: str,
    payload: bytes,
    random_bytes: RandomBytes,
) -> Ciphertext:
    """Encrypt ``payload`` so that only ``pk.threshold`` validators together can open it."""
    r = random_scalar(random_bytes)
    return encrypt_with_secret(pk, chain_id, namespace, payload, r, random_bytes(32))


def encrypt_with_secret(
    pk: ThresholdPublicKey, chain_id: str, namespace: str, payload: bytes, r: int, aux: bytes
) -> Ciphertext:
    """``encrypt`` with the ephemeral secret ``r`` and BIP-340's ``aux`` given (test vectors).

    Both must be fresh and secret: whoever knows ``r`` can decrypt.
    """
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    if not namespace or len(namespace) > MAX_NAMESPACE_CHARS:
        raise ValueError("namespace must be 1 to 64 characters")
    r, u = even_y(r)
    key, key_check = derive_keys(mul(r, pk.public_key), u)
    the_label = label(chain_id, namespace, pk.fingerprint)
    sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(payload, the_label, NONCE, key)
    signature = schnorr_sign(r, signed_message(the_label, key_check, sealed), aux)
    return Ciphertext(namespace, u, key_check, sealed, signature)


def check(pk: ThresholdPublicKey, chain_id: str, ct: Ciphertext) -> None:
    """Raise :class:`InvalidCiphertext` unless ``ct`` is well formed for this chain and key.

    Cost: one BIP-340 verification (about one variable-base multiplication).
    Reasons: ``bad-point`` (``u`` is no x-coordinate), ``bad-proof`` (the
    signature does not hold for this label, key check and sealed payload).
    """
    message = signed_message(label(chain_id, ct.namespace, pk.fingerprint), ct.key_check, ct.sealed)
    try:
        valid = schnorr_verify(ct.u, ct.signature, message)
    except InvalidPoint:
        raise InvalidCiphertext("bad-point") from None
    if not valid:
        raise InvalidCiphertext("bad-proof")


def open_with(pk: ThresholdPublicKey, chain_id: str, ct: Ciphertext, shared: bytes) -> bytes | None:
    """The plaintext if ``shared`` is the right ``K = x·u`` and the AEAD opens, else None."""
    key, key_check = derive_keys(shared, ct.u)
    if key_check != ct.key_check:
        return None
    try:
        return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            ct.sealed, label(chain_id, ct.namespace, pk.fingerprint), NONCE, key
        )
    except nacl.exceptions.CryptoError:
        return None


def key_matches(ct: Ciphertext, shared: bytes) -> bool:
    """True when ``shared`` is the ``K`` this ciphertext was made with."""
    return derive_keys(shared, ct.u)[1] == ct.key_check
