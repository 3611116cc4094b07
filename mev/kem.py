"""Threshold encryption of transactions: TDH2 (Shoup–Gennaro) over Ed25519.

Theory of operation
-------------------
To encrypt for the committee's key ``h`` under a label (chain id + rollup
namespace), a client picks ``r`` and sends ``u = rG`` and ``ū = rḠ``; the
shared secret ``K = r·h`` is hashed into a 32-byte XChaCha20-Poly1305 key and a
16-byte key check. A Schnorr-style proof ``(e, f)`` shows that ``u`` and ``ū``
share one discrete log and binds it to the sealed bytes and the label, so a
ciphertext can be neither mauled nor moved to another namespace or chain
(CCA security in the random-oracle model, as in TDH2). Validators jointly
compute ``K = x·u`` from decryption shares (``mev.shares``) only after the
order is final.

The key check makes the symmetric key committing: a wrong ``K`` (from bad
shares) is detected before the AEAD is even tried, and no ciphertext can open
to two different plaintexts under two keys.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Annotated

import nacl.bindings as sodium
import nacl.exceptions

from mev.group import (
    G_BAR,
    G,
    InvalidPoint,
    L,
    RandomBytes,
    base_mul,
    check_point,
    hash_to_scalar,
    mul,
    random_scalar,
    scalar_bytes,
    sub,
)
from mev.keys import Point, ThresholdPublicKey
from sequencer_net.base import codec
from sequencer_net.base.codec import Size

MAX_PAYLOAD_BYTES = 64 * 1024
MAX_NAMESPACE_CHARS = 64
TAG_BYTES = 16
NONCE = bytes(24)  # every ciphertext has a fresh key, so a fixed nonce is safe
PROOF_DOMAIN = b"seqnet/tdh2/proof/v1"
KDF_DOMAIN = b"seqnet/tdh2/kdf/v1"

Scalar = Annotated[bytes, Size(exact=32)]


class InvalidCiphertext(ValueError):
    """A ciphertext that must not be ordered or decrypted; ``reason`` is a metric label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Ciphertext:
    """An encrypted transaction for one rollup namespace (wire and storage form)."""

    namespace: Annotated[str, Size(max=MAX_NAMESPACE_CHARS)]
    u: Point
    u_bar: Point
    e: Scalar
    f: Scalar
    key_check: Annotated[bytes, Size(exact=16)]
    sealed: Annotated[bytes, Size(max=MAX_PAYLOAD_BYTES + TAG_BYTES)]


def label(chain_id: str, namespace: str) -> bytes:
    """What a ciphertext is bound to: it decrypts for this chain and namespace only."""
    return codec.dumps_plain(["seqnet/label/v1", chain_id, namespace])


def digest(ct: Ciphertext) -> bytes:
    """The ciphertext's identity in the mempool and in blocks."""
    return digest_of_encoding(codec.encode(ct))


def digest_of_encoding(data: bytes) -> bytes:
    """``digest`` from the canonical encoding itself (no decode needed to deduplicate)."""
    return hashlib.sha256(b"seqnet/ciphertext/v1\x00" + data).digest()


def derive_keys(shared: bytes, u: bytes) -> tuple[bytes, bytes]:
    """(AEAD key, key check) from the shared point ``K`` and the ephemeral ``u``."""
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
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}")
    if not namespace or len(namespace) > MAX_NAMESPACE_CHARS:
        raise ValueError("namespace must be 1 to 64 characters")
    r, s = random_scalar(random_bytes), random_scalar(random_bytes)
    u, u_bar = base_mul(r), mul(r, G_BAR)
    key, key_check = derive_keys(mul(r, pk.public_key), u)
    the_label = label(chain_id, namespace)
    sealed = sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(payload, the_label, NONCE, key)
    w, w_bar = base_mul(s), mul(s, G_BAR)
    e = _challenge(the_label, key_check, sealed, u, w, u_bar, w_bar)
    f = (s + r * e) % L
    return Ciphertext(namespace, u, u_bar, scalar_bytes(e), scalar_bytes(f), key_check, sealed)


def check(chain_id: str, ct: Ciphertext) -> None:
    """Raise :class:`InvalidCiphertext` unless ``ct`` is well formed for ``chain_id``.

    Cost: one base and three variable-base multiplications, two point checks.
    """
    try:
        check_point(ct.u)
        check_point(ct.u_bar)
    except InvalidPoint:
        raise InvalidCiphertext("bad-point") from None
    e, f = int.from_bytes(ct.e, "little"), int.from_bytes(ct.f, "little")
    if not (0 < e < L and 0 < f < L):
        raise InvalidCiphertext("bad-scalar")
    w = sub(base_mul(f), mul(e, ct.u))
    w_bar = sub(mul(f, G_BAR), mul(e, ct.u_bar))
    the_label = label(chain_id, ct.namespace)
    if _challenge(the_label, ct.key_check, ct.sealed, ct.u, w, ct.u_bar, w_bar) != e:
        raise InvalidCiphertext("bad-proof")


def open_with(chain_id: str, ct: Ciphertext, shared: bytes) -> bytes | None:
    """The plaintext if ``shared`` is the right ``K = x·u`` and the AEAD opens, else None."""
    key, key_check = derive_keys(shared, ct.u)
    if key_check != ct.key_check:
        return None
    try:
        return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
            ct.sealed, label(chain_id, ct.namespace), NONCE, key
        )
    except nacl.exceptions.CryptoError:
        return None


def key_matches(ct: Ciphertext, shared: bytes) -> bool:
    """True when ``shared`` is the ``K`` this ciphertext was made with."""
    return derive_keys(shared, ct.u)[1] == ct.key_check


def _challenge(the_label: bytes, key_check: bytes, sealed: bytes, *points: bytes) -> int:
    return hash_to_scalar(PROOF_DOMAIN, the_label, key_check, sealed, G, G_BAR, *points)
