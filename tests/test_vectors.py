"""The published encryption vectors still hold, and decrypt as documented."""

from __future__ import annotations

import hashlib
import json
import pathlib

from mev import group, kem
from mev.combine import open_batch
from mev.keys import ThresholdPublicKey
from mev.shares import ShareBatch, verify_share_batch
from mev.vectors import build
from sequencer_net.base import codec

VECTORS = pathlib.Path(__file__).parent.parent / "docs" / "vectors" / "threshold.json"


def test_vectors_file_matches_the_code() -> None:
    assert VECTORS.read_text() == json.dumps(build(), indent=2) + "\n"


def _public(v: dict[str, object]) -> ThresholdPublicKey:
    return ThresholdPublicKey(
        v["threshold"],  # type: ignore[arg-type]
        bytes.fromhex(v["public_key"]),  # type: ignore[arg-type]
        tuple(bytes.fromhex(k) for k in v["verification_keys"]),  # type: ignore[attr-defined]
    )


def test_vectors_decrypt_from_the_published_bytes_alone() -> None:
    v = json.loads(VECTORS.read_text())
    public = _public(v)
    ct = codec.decode(kem.Ciphertext, bytes.fromhex(v["ciphertext_cbor"]))
    kem.check(public, v["chain_id"], ct)
    batch_id = bytes.fromhex(v["batch_id"])
    batches = {
        i: codec.decode(ShareBatch, bytes.fromhex(h)) for i, h in enumerate(v["share_batches_cbor"])
    }
    assert all(verify_share_batch(public, batch_id, [ct.u], b) for b in batches.values())
    opening = open_batch(public, v["chain_id"], batch_id, [ct], batches)
    assert opening.plaintexts == [bytes.fromhex(v["payload_hex"])]
    assert opening.keys == [bytes.fromhex(v["shared_point_K"])]


def test_each_intermediate_value_follows_from_the_documented_formulas() -> None:
    """What another implementation recomputes, step by step, from the spec."""
    v = json.loads(VECTORS.read_text())
    h = bytes.fromhex(v["public_key"])
    fingerprint = hashlib.sha256(b"seqnet/threshold-key/v1" + h).digest()
    assert fingerprint.hex() == v["key_fingerprint"] == _public(v).fingerprint.hex()
    label = codec.dumps_plain(["seqnet/label/v2", v["chain_id"], v["namespace"], fingerprint])
    assert label.hex() == v["label"]
    drawn, r = int(v["ephemeral_r_drawn"], 16), int(v["ephemeral_r"], 16)
    assert r in (drawn, group.ORDER - drawn) and group.base_mul(r)[0] == 2
    u = bytes.fromhex(v["u_x_only"])
    assert group.base_mul(r) == b"\x02" + u
    shared = group.mul(r, h)  # the client's K = r·h equals the committee's x·u
    assert shared.hex() == v["shared_point_K"]
    okm = hashlib.sha512(b"seqnet/kem/kdf/v2" + shared + u).digest()
    assert (okm[:32].hex(), okm[32:48].hex()) == (v["aead_key"], v["key_check"])
    message = bytes.fromhex(v["signed_message"])
    parts = [label, okm[32:48], bytes.fromhex(v["sealed"])]
    domain = b"seqnet/kem/signature/v2"
    framed = len(domain).to_bytes(2, "big") + domain
    framed += b"".join(len(p).to_bytes(4, "big") + p for p in parts)
    assert hashlib.sha256(framed).digest() == message
    signature = bytes.fromhex(v["signature"])
    assert group.schnorr_verify(u, signature, message)
    again = kem.encrypt_with_secret(
        _public(v),
        v["chain_id"],
        v["namespace"],
        bytes.fromhex(v["payload_hex"]),
        drawn,
        bytes.fromhex(v["aux_randomness"]),
    )
    assert codec.encode(again).hex() == v["ciphertext_cbor"]
    digest = hashlib.sha256(b"seqnet/ciphertext/v1\x00" + codec.encode(again)).hexdigest()
    assert digest == v["ciphertext_digest"]
