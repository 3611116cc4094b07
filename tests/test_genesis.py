"""Genesis and key files: round trip, permissions, strict reading, libp2p peer ids."""

from __future__ import annotations

import json
import pathlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mev import group
from mev.keys import matches
from sequencer_net.node import genesis as gen

GENESIS, KEYS = gen.create(4, random_bytes=group.seeded_random_bytes(b"genesis-tests"))
NON_CANONICAL_X = (1 + group.FIELD_PRIME).to_bytes(32, "big").hex()  # x = 1, plus p


def test_round_trip_through_files(tmp_path: pathlib.Path) -> None:
    gen.write(tmp_path, GENESIS, KEYS)
    assert gen.load_genesis(tmp_path / "genesis.json") == GENESIS
    for k in KEYS:
        path = tmp_path / f"node-{k.index}.key.json"
        assert path.stat().st_mode & 0o777 == 0o600
        loaded = gen.load_keys(path)
        loaded.check_against(GENESIS)
        assert matches(GENESIS.threshold_key, loaded.key_share)
    assert (GENESIS.n, GENESIS.f, GENESIS.threshold_key.threshold) == (4, 1, 2)


def test_existing_genesis_is_not_overwritten_without_force(tmp_path: pathlib.Path) -> None:
    gen.write(tmp_path, GENESIS, KEYS)
    with pytest.raises(gen.GenesisError, match="exists"):
        gen.write(tmp_path, GENESIS, KEYS)
    gen.write(tmp_path, GENESIS, KEYS, force=True)


def test_key_file_readable_by_others_is_refused(tmp_path: pathlib.Path) -> None:
    gen.write(tmp_path, GENESIS, KEYS)
    path = tmp_path / "node-0.key.json"
    path.chmod(0o644)
    with pytest.raises(gen.GenesisError, match="chmod 600"):
        gen.load_keys(path)


def test_keys_of_another_validator_do_not_match() -> None:
    wrong = gen.NodeKeys(GENESIS.chain_id, 1, KEYS[2].signing_key, KEYS[1].key_share)
    with pytest.raises(gen.GenesisError, match="ed25519"):
        wrong.check_against(GENESIS)


def test_peer_ids_match_py_libp2p() -> None:
    from libp2p.crypto.ed25519 import Ed25519PublicKey
    from libp2p.peer.id import ID

    for v in GENESIS.validators:
        assert v.peer_id == ID.from_pubkey(Ed25519PublicKey.from_bytes(v.public_key)).to_base58()


def mutated(path: list[Any], value: Any) -> dict[str, Any]:
    doc = json.loads(json.dumps(GENESIS.to_json()))
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (["format"], "other/1", "format"),
        (["chain_id"], 5, "chain_id"),
        (["validators", 1, "index"], 3, "index order"),
        (["validators", 0, "public_key"], "zz", "public_key"),
        (["validators", 0, "peer_id"], "12D3KooWfake", "peer_id"),
        (["threshold", "t"], 9, "threshold"),
        (["threshold", "public_key"], "00" * 32, "threshold"),
        (["threshold", "verification_keys"], [], "threshold"),
        (["namespaces"], ["x" * 65], "namespaces"),
        (["params"], {"timeout": -1}, "params.timeout"),
        (["params"], {"timeout": True}, "params.timeout"),
    ],
)
def test_malformed_genesis_is_refused_naming_the_field(
    path: list[Any], value: Any, message: str
) -> None:
    with pytest.raises(gen.GenesisError, match=message):
        gen.Genesis.from_json(mutated(path, value))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.floats(allow_nan=False),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_arbitrary_json_raises_only_genesis_error(value: Any) -> None:
    for reader in (gen.Genesis.from_json, gen.NodeKeys.from_json):
        with pytest.raises(gen.GenesisError):
            reader(value)


def _validator_json(i: int, **changes: Any) -> dict[str, Any]:
    return {**GENESIS.to_json()["validators"][i], **changes}


def _swapped_verification_keys() -> list[str]:
    keys = list(GENESIS.to_json()["threshold"]["verification_keys"])
    keys[2], keys[3] = keys[3], keys[2]
    return keys


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        # the probe's edits: a node must not start from them
        (["threshold", "t"], 1, r"t = 1 but n = 4 validators need t = f \+ 1 = 2"),
        (["threshold", "t"], 3, r"t = 3 but n = 4 validators need t = f \+ 1 = 2"),
        (["n"], 5, r"genesis.n: says 5 but lists 4"),
        (["f"], 0, r"genesis.f: says 0 but n = 4 gives f = 1"),
        (
            ["threshold", "verification_keys"],
            _swapped_verification_keys(),
            r"keys\[2\] does not lie",
        ),
        (
            ["threshold", "public_key"],
            GENESIS.to_json()["threshold"]["verification_keys"][0],
            "public_key is not the value",
        ),
        (["threshold", "public_key"], _validator_json(0)["public_key"], "expected 33 bytes"),
        (["threshold", "public_key"], "02" + "00" * 32, "threshold: not a point"),
        (["threshold", "public_key"], "02" + NON_CANONICAL_X, "threshold: not a canonical"),
        (["threshold", "verification_keys", 1], "04" + "00" * 32, "threshold: not a canonical"),
        (["validators", 1], _validator_json(0, index=1), "same public_key as validators"),
        (["validators", 1, "address"], _validator_json(0)["address"], "same address as validators"),
        (["validators", 1, "address"], "127.0.0.1:7101", r"validators\[1\].address"),
        (["namespaces"], ["rollup-a", "rollup-a"], "no namespace twice"),
        (["namespaces"], [], "at least one"),
        (["chain_id"], "", "chain_id"),
        (["validators", 0, "weight"], 5, "unknown field 'weight'"),
        (["threshold", "degree"], 1, "unknown field 'degree'"),
        (["extra"], {}, "unknown field 'extra'"),
    ],
)
def test_inconsistent_genesis_is_refused_naming_the_rule(
    path: list[Any], value: Any, message: str
) -> None:
    with pytest.raises(gen.GenesisError, match=message):
        gen.Genesis.from_json(mutated(path, value))


def test_a_genesis_missing_a_validator_is_refused(tmp_path: pathlib.Path) -> None:
    doc = mutated(["n"], 3)
    doc["f"], doc["validators"] = 0, doc["validators"][:3]
    path = tmp_path / "genesis.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(gen.GenesisError, match="4 verification keys for 3 validators"):
        gen.load_genesis(path)


def test_a_dealer_is_held_to_the_same_rules() -> None:
    with pytest.raises(gen.GenesisError, match=r"t = 3 but n = 4"):
        gen.create(4, threshold=3)
    assert gen.create(7)[0].threshold_key.threshold == 3


@pytest.mark.parametrize("share", ["00" * 32, f"{group.ORDER:064x}", "ff" * 32])
def test_a_key_file_share_outside_1_to_n_is_refused(share: str) -> None:
    doc = {**KEYS[0].to_json(), "threshold_share": share}
    with pytest.raises(gen.GenesisError, match="threshold_share is not a valid scalar"):
        gen.NodeKeys.from_json(doc)


def test_the_threshold_share_is_stored_as_32_big_endian_bytes() -> None:
    doc = KEYS[1].to_json()
    assert int(doc["threshold_share"], 16) == KEYS[1].key_share.secret
    assert len(GENESIS.to_json()["threshold"]["public_key"]) == 66  # 33 bytes, compressed
