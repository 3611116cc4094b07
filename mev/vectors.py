"""Fixed test vectors for the encryption format, so other languages can interoperate.

``python -m mev.vectors`` prints them as JSON (kept in ``docs/vectors/threshold.json``
and checked by ``tests/test_vectors.py``). Everything derives from fixed seeds;
the ephemeral secret ``r`` and BIP-340's ``aux`` are published so that another
implementation can rebuild the ciphertext byte for byte.
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
    draw = group.seeded_random_bytes(b"seqnet-vectors/encrypt")
    drawn_r, aux = group.random_scalar(draw), draw(32)
    r, u = group.even_y(drawn_r)
    ct = kem.encrypt_with_secret(public, CHAIN_ID, NAMESPACE, PAYLOAD, r, aux)
    assert ct.u == u
    lam = group.lagrange_at_zero([1, 2])
    x = (lam[0] * shares[0].secret + lam[1] * shares[1].secret) % group.ORDER
    shared = group.mul(x, b"\x02" + ct.u)
    key, key_check = kem.derive_keys(shared, ct.u)
    the_label = kem.label(CHAIN_ID, NAMESPACE, public.fingerprint)
    batches = [_make_shares(shares[i], public, BATCH_ID, [ct.u]) for i in (0, 1)]
    return {
        "description": "seqnet threshold encryption vectors (signed ElGamal on secp256k1);"
        " see docs/encryption.md",
        "chain_id": CHAIN_ID,
        "namespace": NAMESPACE,
        "payload_hex": PAYLOAD.hex(),
        "threshold": public.threshold,
        "public_key": public.public_key.hex(),
        "key_fingerprint": public.fingerprint.hex(),
        "verification_keys": [k.hex() for k in public.verification_keys],
        "key_shares": [group.scalar_bytes(s.secret).hex() for s in shares],
        "label": the_label.hex(),
        "ephemeral_r_drawn": group.scalar_bytes(drawn_r).hex(),
        "ephemeral_r": group.scalar_bytes(r).hex(),  # n - drawn when drawn·G has odd y
        "aux_randomness": aux.hex(),
        "u_x_only": ct.u.hex(),
        "shared_point_K": shared.hex(),
        "aead_key": key.hex(),
        "key_check": key_check.hex(),
        "sealed": ct.sealed.hex(),
        "signed_message": kem.signed_message(the_label, key_check, ct.sealed).hex(),
        "signature": ct.signature.hex(),
        "ciphertext_cbor": codec.encode(ct).hex(),
        "ciphertext_digest": kem.digest(ct).hex(),
        "batch_id": BATCH_ID.hex(),
        "share_batches_cbor": [codec.encode(b).hex() for b in batches],
    }


if __name__ == "__main__":
    print(json.dumps(build(), indent=2))
