"""Fixed test vectors for the encryption format, so other languages can interoperate.

``python -m mev.vectors`` prints them as JSON (kept in ``docs/vectors/threshold.json``
and checked by ``tests/test_vectors.py``). Everything derives from fixed seeds.
"""

from __future__ import annotations

import json
from typing import Any

from mev import group, kem
from mev.keys import deal
from mev.shares import _make_shares
from sequencer_net.base import codec

CHAIN_ID = "seqnet-vectors"
NAMESPACE = "rollup-a"
PAYLOAD = b"hello rollup"
BATCH_ID = bytes(range(32))


def build() -> dict[str, Any]:
    public, shares = deal(4, 2, group.seeded_random_bytes(b"seqnet-vectors/keys"))
    ct = kem.encrypt(
        public, CHAIN_ID, NAMESPACE, PAYLOAD, group.seeded_random_bytes(b"seqnet-vectors/encrypt")
    )
    secret = group.lagrange_at_zero([1, 2])
    x = (secret[0] * shares[0].secret + secret[1] * shares[1].secret) % group.L
    shared = group.mul(x, ct.u)
    key, key_check = kem.derive_keys(shared, ct.u)
    batches = [_make_shares(shares[i], public, BATCH_ID, [ct.u]) for i in (0, 1)]
    return {
        "description": "seqnet threshold encryption vectors; see docs/encryption.md",
        "chain_id": CHAIN_ID,
        "namespace": NAMESPACE,
        "payload_hex": PAYLOAD.hex(),
        "g_bar": group.G_BAR.hex(),
        "label": kem.label(CHAIN_ID, NAMESPACE).hex(),
        "threshold": public.threshold,
        "public_key": public.public_key.hex(),
        "verification_keys": [k.hex() for k in public.verification_keys],
        "key_shares": [group.scalar_bytes(s.secret).hex() for s in shares],
        "ciphertext_cbor": codec.encode(ct).hex(),
        "ciphertext_digest": kem.digest(ct).hex(),
        "shared_point_K": shared.hex(),
        "aead_key": key.hex(),
        "key_check": key_check.hex(),
        "batch_id": BATCH_ID.hex(),
        "share_batches_cbor": [codec.encode(b).hex() for b in batches],
    }


if __name__ == "__main__":
    print(json.dumps(build(), indent=2))
