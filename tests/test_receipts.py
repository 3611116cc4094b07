"""Transaction receipts: a submitter verifies where its transaction is final, from the genesis.

Pure tests build blocks, QCs and batch certificates with the test committee
and check one lie per test, each with the reason the verifier must give. One
real cluster then serves a receipt right after commit, again with the
plaintext once the batch is certified, and a receipt shown for another digest
fails.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import re
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest
import trio

from delivery.header import BatchCertificate, BatchHeader, Unverified, genesis_batch_hash
from delivery.nmt import Leaf, namespace_root, prove_leaf, tree_order
from delivery.receipt import (
    Inclusion,
    Receipt,
    VerifiedReceipt,
    commit_proof,
    decode_receipt,
    verify_receipt,
)
from ordering.fair.app import FairPayload
from ordering.messages import Block, QuorumCert, block_hash
from sequencer_net.base import codec
from sequencer_net.client.encrypt import seal
from sequencer_net.client.http import ClientError, get_json, post
from sequencer_net.client.receipt import fetch_receipt
from tests.cluster import Processes, committing_async, seqnet, wait_until
from tests.factory import Net

NET = Net(4)
DIGESTS = (b"\x11" * 32, b"\x22" * 32, b"\x33" * 32)
OPENED = (  # what the block's transactions open to, in consensus order
    Leaf("rollup-b", DIGESTS[0], b"first"),
    Leaf("rollup-a", DIGESTS[1], b"second"),
    Leaf("rollup-a", DIGESTS[2], None),
)


def payload(order: tuple[bytes, ...]) -> bytes:
    return codec.encode(FairPayload((), order, tuple(b"ct" + d for d in order)))


BLOCK = NET.block(1, NET.genesis_qc, payload(DIGESTS))
QC = NET.qc(BLOCK)
CHILD = NET.block(2, QC, payload(()))
CHILD_QC = NET.qc(CHILD)
LEAVES = tree_order(OPENED)


def certify(header: BatchHeader, signers: list[int] | None = None) -> BatchCertificate:
    signers = signers if signers is not None else list(range(NET.committee.quorum))
    signed = [NET.keys[i].sign(header, NET.chain_id, i) for i in sorted(signers)]
    return BatchCertificate(header, tuple((s.signer, s.signature) for s in signed))


def header_of(block: Block, leaves: list[Leaf]) -> BatchHeader:
    return BatchHeader(
        NET.chain_id,
        block.height,
        block_hash(block),
        namespace_root(leaves),
        len(leaves),
        genesis_batch_hash(NET.chain_id),
    )


CERT = certify(header_of(BLOCK, LEAVES))


def inclusion(digest: bytes, cert: BatchCertificate = CERT) -> Inclusion:
    index = next(i for i, leaf in enumerate(LEAVES) if leaf.digest == digest)
    return Inclusion(cert, LEAVES[index], prove_leaf(LEAVES, index))


def receipt(position: int = 1, opened: bool = False) -> Receipt:
    found = inclusion(DIGESTS[position]) if opened else None
    return Receipt(BLOCK, QC, position, (CHILD,), CHILD_QC, found)


def rejected(r: Receipt, digest: bytes = DIGESTS[1]) -> str:
    with pytest.raises(Unverified) as exc:
        verify_receipt(NET.committee, r, digest)
    return exc.value.reason


def forged(qc: QuorumCert) -> QuorumCert:
    """``qc`` with its first signature replaced by one over another vote."""
    other = NET.qc(NET.block(7, NET.genesis_qc, b"other"))
    return QuorumCert(qc.vote, (other.signatures[0], *qc.signatures[1:]))


# --- what verifies ----------------------------------------------------------------------------


def test_a_receipt_verifies_from_the_committee_alone() -> None:
    for position, digest in enumerate(DIGESTS):
        r = receipt(position)
        assert decode_receipt(codec.encode(r)) == r
        verified = verify_receipt(NET.committee, r, digest)
        assert verified == VerifiedReceipt(1, position, block_hash(BLOCK), None)


def test_an_opened_receipt_proves_the_plaintext() -> None:
    for position, digest in enumerate(DIGESTS):
        verified = verify_receipt(NET.committee, receipt(position, opened=True), digest)
        assert verified.decrypted == OPENED[position]


def test_a_block_committed_as_an_ancestor_is_proved_through_the_chain_above_it() -> None:
    # round 2 timed out: the child (round 3) is not in the next round; its child is
    child = NET.block(3, QC, payload(()))
    grandchild = NET.block(4, NET.qc(child), payload(()))
    stored = [(BLOCK, QC), (child, NET.qc(child)), (grandchild, NET.qc(grandchild))]
    assert commit_proof(stored) == (QC, (child, grandchild), NET.qc(grandchild))
    r = Receipt(BLOCK, QC, 1, (child, grandchild), NET.qc(grandchild), None)
    assert verify_receipt(NET.committee, r, DIGESTS[1]).height == 1
    cut = dataclasses.replace(r, commit_chain=(child,), commit_certificate=NET.qc(child))
    assert rejected(cut) == "not-committed"
    assert commit_proof(stored[:2]) is None  # the block above the child is not committed yet


def test_the_proof_uses_the_childs_parent_qc_whatever_quorum_was_stored() -> None:
    other_quorum = NET.qc(BLOCK, signers=[1, 2, 3])
    proof = commit_proof([(BLOCK, other_quorum), (CHILD, CHILD_QC)])
    assert proof == (QC, (CHILD,), CHILD_QC)


# --- each lie, with its reason ----------------------------------------------------------------


def test_another_position_is_refused() -> None:
    assert rejected(receipt(position=0)) == "wrong-position"
    assert rejected(dataclasses.replace(receipt(), position=3)) == "wrong-position"


def test_a_digest_the_block_did_not_order_is_refused() -> None:
    assert rejected(receipt(), b"\x99" * 32) == "wrong-digest"
    assert rejected(receipt(opened=True), b"\x99" * 32) == "wrong-digest"


def test_another_block_is_refused() -> None:
    other = NET.block(1, NET.genesis_qc, payload((DIGESTS[1],)))
    assert rejected(dataclasses.replace(receipt(), block=other)) == "wrong-block"
    # the other block with its own QC: the commit proof is still the first block's
    own = NET.qc(other)
    assert rejected(dataclasses.replace(receipt(), block=other, certificate=own)) == (
        "not-committed"
    )


def test_a_forged_qc_is_refused() -> None:
    r = receipt()
    assert rejected(dataclasses.replace(r, certificate=forged(QC))) == "bad-qc"
    assert rejected(dataclasses.replace(r, commit_certificate=forged(CHILD_QC))) == "bad-qc"
    short = NET.qc(CHILD, signers=[0, 1])
    assert rejected(dataclasses.replace(r, commit_certificate=short)) == "bad-qc"
    # a forged certificate of the block, carried by a child that names it
    fake = forged(QC)
    child = NET.block(2, fake, payload(()))
    r = Receipt(BLOCK, fake, 1, (child,), NET.qc(child), None)
    assert rejected(r) == "bad-qc"


def test_a_child_not_in_the_next_round_is_refused() -> None:
    late = NET.block(3, QC, payload(()))
    r = dataclasses.replace(receipt(), commit_chain=(late,), commit_certificate=NET.qc(late))
    assert rejected(r) == "not-committed"


def test_a_child_of_another_block_is_refused() -> None:
    other = NET.block(1, NET.genesis_qc, b"another block at height 1")
    child = NET.block(2, NET.qc(other), payload(()))
    r = dataclasses.replace(receipt(), commit_chain=(child,), commit_certificate=NET.qc(child))
    assert rejected(r) == "not-committed"


def test_a_commit_certificate_of_another_block_is_refused() -> None:
    other = NET.block(2, QC, b"a sibling of the child")
    assert rejected(dataclasses.replace(receipt(), commit_certificate=NET.qc(other))) == (
        "not-committed"
    )
    assert rejected(dataclasses.replace(receipt(), commit_chain=())) == "not-committed"


def test_a_payload_that_is_not_a_fair_payload_is_refused() -> None:
    block = NET.block(1, NET.genesis_qc, b"not cbor")
    qc = NET.qc(block)
    child = NET.block(2, qc, b"")
    r = Receipt(block, qc, 0, (child,), NET.qc(child), None)
    assert rejected(r) == "bad-payload"


def test_a_wrong_inclusion_is_refused() -> None:
    r = receipt(opened=True)
    assert r.inclusion is not None
    other_leaf = dataclasses.replace(r, inclusion=inclusion(DIGESTS[2]))
    assert rejected(other_leaf) == "wrong-leaf"
    lied = dataclasses.replace(r.inclusion, leaf=Leaf("rollup-a", DIGESTS[1], b"forged"))
    assert rejected(dataclasses.replace(r, inclusion=lied)) == "bad-proof"
    other_block = NET.block(1, NET.genesis_qc, b"x")
    elsewhere = inclusion(DIGESTS[1], certify(header_of(other_block, LEAVES)))
    assert rejected(dataclasses.replace(r, inclusion=elsewhere)) == "wrong-block"
    short = inclusion(DIGESTS[1], certify(CERT.header, [0, 1]))
    assert rejected(dataclasses.replace(r, inclusion=short)) == "short-certificate"


def test_bytes_that_are_not_one_receipt_are_refused() -> None:
    data = codec.encode(receipt(opened=True))
    for bad in (b"", data[:-1], data + b"\x00", b"\xa0"):
        with pytest.raises(Unverified) as exc:
            decode_receipt(bad)
        assert exc.value.reason == "decode"


# --- a real cluster ---------------------------------------------------------------------------


async def test_a_submitter_verifies_its_receipt_after_commit_and_after_decryption(
    tmp_path: pathlib.Path,
) -> None:
    async with committing_async(tmp_path) as c:
        plaintext = b'{"from": "alice", "to": "bob", "amount": 5}'
        digest = post(c.api(0), "/v1/transactions", seal(c.genesis, "rollup-a", plaintext).data)[
            "digest"
        ]
        other = post(c.api(0), "/v1/transactions", seal(c.genesis, "rollup-a", b"x").data)["digest"]
        # from another node than the one submitted to, as soon as it has the commit proof:
        # the order is proved before anyone could prove what the transaction says
        first = await trio.to_thread.run_sync(lambda: _receipt_when_committed(c, digest))
        assert first.decrypted is None, "the first receipt already carried the plaintext"
        record = get_json(c.api(1), f"/v1/transactions/{digest}")
        assert first.height == record["height"]

        def certified() -> bool:
            status = c.status(1)
            return status is not None and status["certified_height"] >= first.height

        await trio.to_thread.run_sync(lambda: wait_until(certified, 30))
        final = fetch_receipt(c.genesis, digest, c.api(1))
        assert (final.height, final.position, final.block_hash) == (
            first.height,
            first.position,
            first.block_hash,
        )
        assert final.decrypted == Leaf("rollup-a", bytes.fromhex(digest), plaintext)
        as_json = get_json(c.api(1), f"/v1/transactions/{digest}/receipt")
        assert as_json["position"] == final.position
        assert as_json["decrypted"]["plaintext"] == plaintext.hex()
        shown = decode_receipt(bytes.fromhex(as_json["cbor"]))
        with pytest.raises(Unverified) as exc:
            verify_receipt(c.genesis.committee(), shown, bytes.fromhex(other))
        assert exc.value.reason in ("wrong-position", "wrong-digest")
        assert _status(c.api(1), f"/v1/transactions/{'ab' * 32}/receipt") == (
            404,
            "not committed yet",
        )
        for bad in ("ab" * 31, "zz" * 32, "ab " + "a" * 58 + " ab"):
            assert _status(c.api(1), f"/v1/transactions/{bad}/receipt")[0] == 400
        spec = get_json(c.api(1), "/openapi.json")
        assert "/v1/transactions/{digest}/receipt" in spec["paths"]
        submitted = await trio.to_thread.run_sync(
            lambda: subprocess.run(
                seqnet("submit", "--dir", str(tmp_path), "--rollup", "rollup-b", "hi"),
                capture_output=True,
                text=True,
                timeout=60,
            )
        )
        assert submitted.returncode == 0, submitted.stderr
        assert re.search(r"receipt verified at height \d+ position \d+", submitted.stdout)


def _receipt_when_committed(c: Processes, digest: str) -> VerifiedReceipt:
    found: list[VerifiedReceipt] = []

    def ready() -> bool:
        try:
            found.append(fetch_receipt(c.genesis, digest, c.api(1)))
        except ClientError as exc:
            assert exc.status == 404, exc
            return False
        return True

    deadline = time.monotonic() + 30
    while not ready():  # polled tightly: the commit proof comes a few ms before the plaintext
        assert time.monotonic() < deadline, "no receipt within 30 s"
        time.sleep(0.002)
    return found[0]


def _status(api: str, path: str) -> tuple[int, str]:
    url = f"http://{api}{urllib.parse.quote(path)}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return int(response.status), ""
    except urllib.error.HTTPError as exc:
        return exc.code, str(json.load(exc).get("error"))
