"""Node-level messages from the network: anything at all decodes or fails with DecodeError."""

from __future__ import annotations

import contextlib
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mev.shares import ShareBatch
from sequencer_net.base.codec import DecodeError, Family
from sequencer_net.node.wire import (
    SHARES,
    SYNC,
    TX,
    DecryptedBatch,
    DecryptedTx,
    ShareRequest,
    SyncedBlock,
    SyncRequest,
    SyncResponse,
    TxBatch,
)
from tests.factory import Net

FAMILIES = [TX, SHARES, SYNC]


def samples() -> list[tuple[Family, object]]:
    net = Net()
    block = net.block(1, net.genesis_qc)
    batch = DecryptedBatch(1, bytes(32), (DecryptedTx("rollup-a", bytes(32), b"hi"),), (b"k",))
    return [
        (TX, TxBatch((b"tx-1", b"tx-2"))),
        (SHARES, ShareBatch(1, bytes(32), (bytes(32),), bytes(32), bytes(32))),
        (SHARES, ShareRequest(7, bytes(32))),
        (SYNC, SyncRequest(5, 10)),
        (SYNC, SyncResponse((SyncedBlock(block, net.qc(block), batch),))),
    ]


@pytest.mark.parametrize(("family", "message"), samples())
def test_each_message_round_trips(family: Family, message: object) -> None:
    assert family.decode(family.encode(message)) == message
    assert isinstance(family.decode(family.encode(message)), type(message))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.sampled_from(FAMILIES))
def test_arbitrary_bytes_decode_or_raise_decode_error(data: bytes, family: Family) -> None:
    with contextlib.suppress(DecodeError):  # anything else (KeyError, TypeError...) fails
        family.decode(data)


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=10_000), st.integers(min_value=0, max_value=255))
def test_every_single_byte_mutation_decodes_or_raises_decode_error(where: int, value: int) -> None:
    for family, message in samples():
        data = bytearray(family.encode(message))
        data[where % len(data)] = value
        with contextlib.suppress(DecodeError):
            family.decode(bytes(data))


def test_oversized_and_out_of_range_requests_are_refused() -> None:
    with pytest.raises(DecodeError):
        SYNC.decode(SYNC.encode(SyncRequest(1, 129)))  # more blocks than a response may hold
    with pytest.raises(DecodeError):
        TX.decode(os.urandom(16), max_bytes=8)
