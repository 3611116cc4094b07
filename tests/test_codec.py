"""Canonical CBOR: round trips, fixed vectors, and rejection of everything else."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

import cbor2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ordering.messages import (
    CONSENSUS,
    BlockRequest,
    BlockResponse,
    Proposal,
    QuorumCert,
    Timeout,
    TimeoutData,
    Vote,
    VoteData,
    block_hash,
)
from ordering.safety import SafetyState
from sequencer_net.base import codec
from sequencer_net.base.codec import DecodeError
from tests.factory import Net
from tests.fuzz import decodes_canonically_or_rejects, mutations, single_byte_mutants

NET = Net(4)
BLOCK = NET.block(1, NET.genesis_qc, b"hello")

# Fixed vectors: another implementation must produce exactly these bytes.
PROPOSAL_HEX = (
    "8201a301a501010201030104a201a30158204bd293ec1d907b033175f406ff75b293d9b18e73a442"
    "4498da8431634934b1ac020003000280054568656c6c6f02f603a301a20101025820a7fbdb6f635d"
    "265d8b19d0bf0668312c6beb7b8a1ac7b8060449b76ccfad73a70201035840022dfe9d99ae5b08fd"
    "67f86706d2bd3d68930bac341670f1b6ce37697e8a5493a645595cb2f22916df58d5494c9458c414"
    "4cdce33ffb6b61516347bff7367804"
)
BLOCK_HASH_HEX = "a7fbdb6f635d265d8b19d0bf0668312c6beb7b8a1ac7b8060449b76ccfad73a7"
VOTE_HEX = (
    "8202a201a301a3015820a7fbdb6f635d265d8b19d0bf0668312c6beb7b8a1ac7b8060449b76ccfad"
    "73a7020103010201035840ca7817f8b4df067595389742d77bc9fe0a807eefe1c000f3de06e15f97"
    "91d74581ad28c032857cb74496e4e324fa4a009147125e24466f1ce31d27a113a3b0040240"
)


def sample_messages() -> list[object]:
    qc1 = NET.qc(BLOCK)
    b2 = NET.block(2, qc1, b"second")
    tc = NET.tc(2, qc1)
    b3 = NET.block(3, qc1, b"")
    timeout = Timeout(NET.keys[2].sign(TimeoutData(2, 1), NET.chain_id, 2), qc1, tc)
    return [
        NET.proposal(BLOCK),
        NET.proposal(b3, tc),
        Vote(NET.keys[1].sign(VoteData(block_hash(b2), 2, 2), NET.chain_id, 1)),
        timeout,
        BlockRequest(block_hash(b2), 64),
        BlockResponse((b2, BLOCK)),
    ]


@pytest.mark.parametrize("message", sample_messages(), ids=lambda m: type(m).__name__)
def test_every_consensus_message_round_trips(message: object) -> None:
    data = CONSENSUS.encode(message)
    assert CONSENSUS.decode(data) == message
    assert CONSENSUS.encode(CONSENSUS.decode(data)) == data


def test_fixed_vectors() -> None:
    assert block_hash(BLOCK).hex() == BLOCK_HASH_HEX
    assert CONSENSUS.encode(NET.proposal(BLOCK)).hex() == PROPOSAL_HEX
    vote = Vote(NET.keys[1].sign(VoteData(block_hash(BLOCK), 1, 1), NET.chain_id, 1))
    assert CONSENSUS.encode(vote).hex() == VOTE_HEX
    decoded = CONSENSUS.decode(bytes.fromhex(PROPOSAL_HEX))
    assert isinstance(decoded, Proposal) and decoded.block.payload == b"hello"


def test_safety_state_round_trips() -> None:
    state = SafetyState(7, NET.qc(BLOCK))
    assert codec.decode(SafetyState, codec.encode(state)) == state


def _vote_plain() -> list[object]:
    return cbor2.loads(bytes.fromhex(VOTE_HEX))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (bytes.fromhex(VOTE_HEX) + b"\x00", "trailing"),
        (cbor2.dumps([2, {1: {1: {2: 1, 1: b"x" * 32}}}]), "non-canonical order"),
        (bytes.fromhex("8218020a"), "non-minimal int"),
        (cbor2.dumps([9, {}]), "unknown type id"),
        (cbor2.dumps([2, {1: {}, 2: 1}]), "unknown field"),
        (cbor2.dumps([2, {}]), "missing field"),
        (cbor2.dumps(cbor2.CBORTag(24, b"\x01")), "tag"),
        (bytes.fromhex("9f0102ff"), "indefinite length"),
        (bytes.fromhex("a201010102"), "duplicate keys"),
        (cbor2.dumps([1.5, {}]), "float type id"),
        (cbor2.dumps([True, {}]), "bool is not an int"),
        (
            cbor2.dumps(
                [2, {1: cbor2.loads(bytes.fromhex(VOTE_HEX))[1][1], cbor2.CBORSimpleValue(2): b""}],
                canonical=True,
            ),
            "simple value posing as an integer key",
        ),
    ],
)
def test_malformed_frames_are_rejected(data: bytes, reason: str) -> None:
    with pytest.raises(DecodeError):
        CONSENSUS.decode(data)


def test_size_cap_applies_before_parsing() -> None:
    with pytest.raises(DecodeError, match="exceeds cap"):
        CONSENSUS.decode(b"\x00" * 100, max_bytes=99)


def test_field_constraints_are_enforced() -> None:
    plain = _vote_plain()
    body = plain[1][1]  # type: ignore[index]
    body[1][1] = b"short"  # block hash must be 32 bytes
    with pytest.raises(DecodeError, match="length 5 != 32"):
        CONSENSUS.decode(cbor2.dumps(plain, canonical=True))
    plain = _vote_plain()
    plain[1][1][2] = 5000  # type: ignore[index]  # signer index out of range
    with pytest.raises(DecodeError, match="out of range"):
        CONSENSUS.decode(cbor2.dumps(plain, canonical=True))
    plain = _vote_plain()
    plain[1][1][1][2] = -1  # type: ignore[index]  # negative round
    with pytest.raises(DecodeError, match="out of range"):
        CONSENSUS.decode(cbor2.dumps(plain, canonical=True))


def test_deep_nesting_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        CONSENSUS.decode(b"\x81" * 5000 + b"\x00")


SAMPLES = sample_messages()
Codec = tuple[Callable[[bytes], Any], Callable[[Any], bytes]]


def _codec_of(cls: type) -> Codec:
    return functools.partial(codec.decode, cls), codec.encode


# Each decoder with the encoder that must give back exactly the bytes it accepted.
CODECS: list[Codec] = [(CONSENSUS.decode, CONSENSUS.encode)]
CODECS += [_codec_of(c) for c in (*CONSENSUS.classes, SafetyState, QuorumCert)]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600), st.sampled_from(CODECS))
def test_arbitrary_bytes_are_refused_or_canonical(data: bytes, pair: Codec) -> None:
    decodes_canonically_or_rejects(*pair, data)


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_mutated_messages_are_refused_or_canonical(data: st.DataObject) -> None:
    original = CONSENSUS.encode(data.draw(st.sampled_from(SAMPLES)))
    mutant = data.draw(mutations(original))
    decodes_canonically_or_rejects(CONSENSUS.decode, CONSENSUS.encode, mutant)


# The samples up to 400 bytes (the larger ones repeat the same structures; they take seconds).
SMALL_SAMPLES = [m for m in SAMPLES if len(CONSENSUS.encode(m)) <= 400]


@pytest.mark.parametrize("message", SMALL_SAMPLES, ids=lambda m: type(m).__name__)
def test_every_single_byte_mutant_is_refused_or_canonical(message: object) -> None:
    """Exhaustive over positions; most mutants land in hashes or signatures and decode."""
    mutants = single_byte_mutants(CONSENSUS.encode(message))
    accepted = [m for m in mutants if decodes_canonically_or_rejects(*CODECS[0], m)]
    assert 0 < len(accepted) < len(mutants)  # both sides of the contract were exercised


cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.binary(max_size=40)
    | st.text(max_size=10)
    | st.floats(),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.integers(0, 6), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.integers(0, 7), cbor_values)
def test_well_formed_cbor_of_the_wrong_shape_is_refused_or_canonical(
    type_id: int, body: object
) -> None:
    data = cbor2.dumps([type_id, body], canonical=True)
    decodes_canonically_or_rejects(CONSENSUS.decode, CONSENSUS.encode, data)


@dataclass(frozen=True, slots=True)
class _Leaves:
    """A dataclass of leaves only: decoded by the inline fast path."""

    name: Annotated[str, codec.Size(max=8)]
    digest: codec.Digest
    note: bytes | None

    def __post_init__(self) -> None:
        if self.name == "bad":
            raise ValueError("the name 'bad' is refused")


def test_a_dataclass_of_leaves_decodes_inline_and_refuses_like_the_checked_path() -> None:
    good = _Leaves("a", b"d" * 32, None)
    assert codec.decode(_Leaves, codec.encode(good)) == good
    assert codec.from_plain(_Leaves, {1: "a", 2: b"d" * 32, 3: b"x"}).note == b"x"
    refused = {
        "bool key": ({True: "a", 2: b"d" * 32, 3: None}, "fields"),
        "missing field": ({1: "a", 2: b"d" * 32}, "fields"),
        "short digest": ({1: "a", 2: b"d", 3: None}, "digest: length 1 != 32"),
        "long name": ({1: "a" * 9, 2: b"d" * 32, 3: None}, "name: length 9 > 8"),
        "wrong type": ({1: "a", 2: b"d" * 32, 3: 7}, "note: expected bytes"),
        "invariant": ({1: "bad", 2: b"d" * 32, 3: None}, "the name 'bad' is refused"),
    }
    for why, (plain, message) in refused.items():
        with pytest.raises(DecodeError, match=message):
            codec.from_plain(_Leaves, plain)
            pytest.fail(why)
