"""The published encryption vectors still hold, and decrypt as documented."""

from __future__ import annotations

import json
import pathlib

from mev import kem
from mev.combine import open_batch
from mev.keys import ThresholdPublicKey
from mev.shares import ShareBatch, verify_share_batch
from mev.vectors import build
from sequencer_net.base import codec

VECTORS = pathlib.Path(__file__).parent.parent / "docs" / "vectors" / "threshold.json"


def test_vectors_file_matches_the_code() -> None:
    assert json.loads(VECTORS.read_text()) == build()


def test_vectors_decrypt_from_the_published_bytes_alone() -> None:
    v = json.loads(VECTORS.read_text())
    public = ThresholdPublicKey(
        v["threshold"],
        bytes.fromhex(v["public_key"]),
        tuple(bytes.fromhex(k) for k in v["verification_keys"]),
    )
    ct = codec.decode(kem.Ciphertext, bytes.fromhex(v["ciphertext_cbor"]))
    kem.check(v["chain_id"], ct)
    batch_id = bytes.fromhex(v["batch_id"])
    batches = {
        i: codec.decode(ShareBatch, bytes.fromhex(h)) for i, h in enumerate(v["share_batches_cbor"])
    }
    assert all(verify_share_batch(public, batch_id, [ct.u], b) for b in batches.values())
    opening = open_batch(public, v["chain_id"], batch_id, [ct], batches)
    assert opening.plaintexts == [bytes.fromhex(v["payload_hex"])]
    assert opening.keys == [bytes.fromhex(v["shared_point_K"])]
