"""Node-level messages from the network: anything at all is refused (DecodeError) or canonical."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from delivery.header import BatchCertificate, BatchHeader
from mev.shares import ShareBatch
from sequencer_net.base.codec import DecodeError, Family
from sequencer_net.node.wire import (
    SHARES,
    SYNC,
    TX,
    BatchVote,
    CertificateReply,
    CertificateRequest,
    DecryptedBatch,
    DecryptedTx,
    ShareRequest,
    SyncedBlock,
    SyncRequest,
    SyncResponse,
    TxBatch,
)
from tests.factory import Net
from tests.fuzz import decodes_canonically_or_rejects, mutations, single_byte_mutants

FAMILIES = [TX, SHARES, SYNC]


def samples() -> list[tuple[Family, object]]:
    net = Net()
    block = net.block(1, net.genesis_qc)
    batch = DecryptedBatch(1, bytes(32), (DecryptedTx("rollup-a", bytes(32), b"hi"),), (b"k",))
    header = BatchHeader(net.chain_id, 1, bytes(32), b"\x01" * 32, 1, b"\x02" * 32)
    cert = BatchCertificate(header, ((0, b"\x03" * 64), (2, b"\x04" * 64)))
    return [
        (TX, TxBatch((b"tx-1", b"tx-2"))),
        (SHARES, ShareBatch(1, bytes(32), (bytes(33),), bytes(32), bytes(32))),
        (SHARES, ShareRequest(7, bytes(32))),
        (SHARES, BatchVote(net.keys[1].sign(header, net.chain_id, 1))),
        (SHARES, CertificateRequest(3)),
        (SHARES, CertificateReply(cert)),
        (SYNC, SyncRequest(5, 10)),
        (SYNC, SyncResponse((SyncedBlock(block, net.qc(block), batch),))),
        (SYNC, SyncResponse((SyncedBlock(block, net.qc(block), batch, cert),))),
    ]


@pytest.mark.parametrize(("family", "message"), samples())
def test_each_message_round_trips(family: Family, message: object) -> None:
    assert family.decode(family.encode(message)) == message
    assert isinstance(family.decode(family.encode(message)), type(message))


SAMPLES = samples()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.sampled_from(FAMILIES))
def test_arbitrary_bytes_are_refused_or_canonical(data: bytes, family: Family) -> None:
    decodes_canonically_or_rejects(family.decode, family.encode, data)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_messages_are_refused_or_canonical(data: st.DataObject) -> None:
    family, message = data.draw(st.sampled_from(SAMPLES))
    mutant = data.draw(mutations(family.encode(message)))
    decodes_canonically_or_rejects(family.decode, family.encode, mutant)


@pytest.mark.parametrize(
    ("family", "message"), SAMPLES, ids=[f"{f.name}-{type(m).__name__}" for f, m in SAMPLES]
)
def test_every_single_byte_mutant_is_refused_or_canonical(family: Family, message: object) -> None:
    mutants = single_byte_mutants(family.encode(message))
    accepted = [
        m for m in mutants if decodes_canonically_or_rejects(family.decode, family.encode, m)
    ]
    assert 0 < len(accepted) < len(mutants)  # both sides of the contract were exercised


def test_oversized_and_out_of_range_requests_are_refused() -> None:
    with pytest.raises(DecodeError):
        SYNC.decode(SYNC.encode(SyncRequest(1, 129)))  # more blocks than a response may hold
    with pytest.raises(DecodeError):
        TX.decode(os.urandom(16), max_bytes=8)
