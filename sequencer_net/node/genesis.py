"""Genesis and validator key files: what a network starts from, and how it is read.

``genesis.json`` is public: chain id, validators (index, ed25519 key, libp2p
peer id, address), the threshold public key with one verification key per
validator (secp256k1 points, 33-byte compressed, in hex), the registered rollup
namespaces and protocol parameters. Each validator's key file (mode 0600) holds
its ed25519 seed — both its vote key and its libp2p identity — and its
threshold key share (a 32-byte big-endian scalar, in hex). Both are read strictly:
size-capped, unknown fields refused, every field type- and range-checked, every
point validated. A genesis must also be self-consistent (:func:`validate`): a
node that started from a hand-edited copy (say threshold 1 instead of f + 1)
would join the network and then disagree with it on every transaction, so it
must not start at all. :func:`digest` binds the canonical genesis into every
libp2p stream (``p2p.host``), so nodes with different genesis files never talk.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
from dataclasses import dataclass, field
from typing import Any

from mev.group import ORDER, POINT_BYTES, SCALAR_BYTES, RandomBytes, scalar_bytes, scalar_from_bytes
from mev.keys import KeyShare, ThresholdPublicKey, deal, matches
from p2p.identity import peer_id
from sequencer_net.base.committee import Committee, decryption_threshold, max_faulty
from sequencer_net.base.signing import SigningKey
from sequencer_net.node.genesis_rules import GenesisError as GenesisError  # re-exported
from sequencer_net.node.genesis_rules import check_t, validate

GENESIS_FORMAT = "seqnet-genesis/1"
KEY_FORMAT = "seqnet-node-key/1"
MAX_FILE_BYTES = 1024 * 1024
DEFAULT_NAMESPACES = ("rollup-a", "rollup-b")
TEST_NETWORK_PARAM = "test_network"  # params.test_network = 1: see ``is_test_network``
GENESIS_FIELDS = ("format", "chain_id", "n", "f", "validators", "threshold", "namespaces", "params")
VALIDATOR_FIELDS = ("index", "public_key", "peer_id", "address")
THRESHOLD_FIELDS = ("t", "public_key", "verification_keys")
KEY_FIELDS = ("format", "chain_id", "index", "ed25519_seed", "threshold_share")


@dataclass(frozen=True, slots=True)
class Validator:
    index: int
    public_key: bytes
    peer_id: str
    address: str


@dataclass(frozen=True, slots=True)
class Genesis:
    chain_id: str
    validators: tuple[Validator, ...]
    threshold_key: ThresholdPublicKey
    namespaces: tuple[str, ...]
    params: dict[str, int] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.validators)

    @property
    def f(self) -> int:
        return max_faulty(self.n)

    @property
    def is_test_network(self) -> bool:
        """Marked for chaos tests: validators may take link faults and misbehave on request."""
        return self.params.get(TEST_NETWORK_PARAM) == 1

    def committee(self) -> Committee:
        return Committee.of(self.chain_id, [v.public_key for v in self.validators])

    def to_json(self) -> dict[str, Any]:
        tk = self.threshold_key
        return {
            "format": GENESIS_FORMAT,
            "chain_id": self.chain_id,
            "n": self.n,
            "f": self.f,
            "validators": [
                {
                    "index": v.index,
                    "public_key": v.public_key.hex(),
                    "peer_id": v.peer_id,
                    "address": v.address,
                }
                for v in self.validators
            ],
            "threshold": {
                "t": tk.threshold,
                "public_key": tk.public_key.hex(),
                "verification_keys": [k.hex() for k in tk.verification_keys],
            },
            "namespaces": list(self.namespaces),
            "params": dict(sorted(self.params.items())),
        }

    @classmethod
    def from_json(cls, data: Any) -> Genesis:
        """Read strictly, then :func:`validate`: the first problem found is the error."""
        doc = _Doc(data, "genesis", GENESIS_FIELDS)
        if doc.text("format") != GENESIS_FORMAT:
            raise GenesisError(f"genesis: format must be {GENESIS_FORMAT!r}")
        validators = tuple(
            _validator(_Doc(v, f"validators[{i}]", VALIDATOR_FIELDS))
            for i, v in enumerate(doc.items("validators"))
        )
        namespaces = tuple(_namespace(ns) for ns in doc.items("namespaces"))
        params = {k: _int(v, f"params.{k}") for k, v in doc.get("params", dict).items()}
        genesis = cls(doc.text("chain_id"), validators, _threshold_key(doc), namespaces, params)
        _check_stated_sizes(doc, genesis)
        validate(genesis)
        return genesis


@dataclass(frozen=True, slots=True)
class NodeKeys:
    """One validator's secrets."""

    chain_id: str
    index: int
    signing_key: SigningKey
    key_share: KeyShare

    def to_json(self) -> dict[str, Any]:
        return {
            "format": KEY_FORMAT,
            "chain_id": self.chain_id,
            "index": self.index,
            "ed25519_seed": self.signing_key.seed.hex(),
            "threshold_share": scalar_bytes(self.key_share.secret).hex(),
        }

    @classmethod
    def from_json(cls, data: Any) -> NodeKeys:
        doc = _Doc(data, "key file", KEY_FIELDS)
        if doc.text("format") != KEY_FORMAT:
            raise GenesisError(f"key file: format must be {KEY_FORMAT!r}")
        index = doc.integer("index")
        secret = scalar_from_bytes(doc.hexbytes("threshold_share", SCALAR_BYTES))
        if not 0 < secret < ORDER:
            raise GenesisError("key file: threshold_share is not a valid scalar")
        seed = doc.hexbytes("ed25519_seed", 32)
        return cls(doc.text("chain_id"), index, SigningKey(seed), KeyShare(index, secret))

    def check_against(self, genesis: Genesis) -> None:
        """Raise unless these keys belong to validator ``index`` of ``genesis``."""
        if self.chain_id != genesis.chain_id or not 0 <= self.index < genesis.n:
            raise GenesisError("key file: not for this chain or index out of range")
        if genesis.validators[self.index].public_key != self.signing_key.public_key:
            raise GenesisError("key file: ed25519 key does not match genesis")
        if not matches(genesis.threshold_key, self.key_share):
            raise GenesisError("key file: threshold share does not match genesis")


def create(
    n: int,
    *,
    chain_id: str = "seqnet-local",
    namespaces: tuple[str, ...] = DEFAULT_NAMESPACES,
    host: str = "127.0.0.1",
    base_port: int = 7100,
    threshold: int | None = None,
    random_bytes: RandomBytes = os.urandom,
    params: dict[str, int] | None = None,
) -> tuple[Genesis, list[NodeKeys]]:
    """A new network with a trusted dealer: for local clusters and tests."""
    if n < 1:
        raise GenesisError("need at least one validator")
    t = decryption_threshold(n) if threshold is None else threshold
    check_t(t, n)
    public, shares = deal(n, t, random_bytes)
    signing = [SigningKey(random_bytes(32)) for _ in range(n)]
    validators = tuple(
        Validator(i, k.public_key, peer_id(k.public_key), f"/ip4/{host}/tcp/{base_port + i}")
        for i, k in enumerate(signing)
    )
    genesis = Genesis(chain_id, validators, public, tuple(namespaces), dict(params or {}))
    validate(genesis)  # never write what a node would refuse to load
    keys = [NodeKeys(chain_id, i, signing[i], shares[i]) for i in range(n)]
    return genesis, keys


def write(
    directory: pathlib.Path, genesis: Genesis, keys: list[NodeKeys], *, force: bool = False
) -> None:
    """Write ``genesis.json`` and ``node-<i>.key.json`` (mode 0600) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / "genesis.json"
    if target.exists() and not force:
        raise GenesisError(f"{target} exists (use --force to overwrite)")
    _write_json(target, genesis.to_json(), 0o644)
    for k in keys:
        _write_json(directory / f"node-{k.index}.key.json", k.to_json(), 0o600)


def load_genesis(path: pathlib.Path) -> Genesis:
    return Genesis.from_json(_read_json(path))


def load_keys(path: pathlib.Path) -> NodeKeys:
    mode = path.stat().st_mode & 0o777 if path.exists() else 0
    if mode & 0o077:
        raise GenesisError(f"{path}: key file must not be readable by others (chmod 600)")
    return NodeKeys.from_json(_read_json(path))


def _write_json(path: pathlib.Path, data: dict[str, Any], mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")
    os.chmod(path, mode)


def _read_json(path: pathlib.Path) -> Any:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise GenesisError(f"{path}: {exc.strerror}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise GenesisError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise GenesisError(f"{path}: not JSON ({exc})") from None


class _Doc:
    """Typed access to a JSON object, with errors that name the field."""

    def __init__(self, data: Any, where: str, fields: tuple[str, ...] | None = None) -> None:
        if not isinstance(data, dict):
            raise GenesisError(f"{where}: expected an object")
        unknown = sorted(str(k) for k in data if fields is not None and k not in fields)
        if unknown:
            raise GenesisError(f"{where}: unknown field {unknown[0]!r}")
        self.data, self.where = data, where

    def get(self, key: str, kind: type) -> Any:
        value = self.data.get(key)
        if not isinstance(value, kind) or isinstance(value, bool) != (kind is bool):
            raise GenesisError(f"{self.where}.{key}: expected {kind.__name__}")
        return value

    def text(self, key: str) -> str:
        return self.get(key, str)  # type: ignore[no-any-return]

    def integer(self, key: str) -> int:
        return _int(self.data.get(key), f"{self.where}.{key}")

    def items(self, key: str) -> list[Any]:
        return self.get(key, list)  # type: ignore[no-any-return]

    def hexbytes(self, key: str, size: int) -> bytes:
        return _hex(self.data.get(key), f"{self.where}.{key}", size)


def _int(value: Any, where: str) -> int:
    if type(value) is not int or not 0 <= value < 2**63:
        raise GenesisError(f"{where}: expected a non-negative integer")
    return value


def _hex(value: Any, where: str, size: int) -> bytes:
    try:
        raw = bytes.fromhex(value) if isinstance(value, str) else b""
    except ValueError:
        raw = b""
    if len(raw) != size:
        raise GenesisError(f"{where}: expected {size} bytes of hex")
    return raw


def _validator(doc: _Doc) -> Validator:
    """Types only; :func:`validate` checks what the values must satisfy."""
    key = doc.hexbytes("public_key", 32)
    return Validator(doc.integer("index"), key, doc.text("peer_id"), doc.text("address"))


def _namespace(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 64:
        raise GenesisError("namespaces: each is a string of 1 to 64 characters")
    return value


def digest(genesis: Genesis) -> bytes:
    """SHA-256 of the canonical genesis (sorted keys): what peers must agree on to talk."""
    return hashlib.sha256(json.dumps(genesis.to_json(), sort_keys=True).encode()).digest()


def fingerprint(genesis: Genesis) -> str:
    """A short id of a genesis, for logs and cluster status (a prefix of :func:`digest`)."""
    return digest(genesis).hex()[:16]


def _threshold_key(doc: _Doc) -> ThresholdPublicKey:
    threshold = _Doc(doc.get("threshold", dict), "threshold", THRESHOLD_FIELDS)
    t, public_key = threshold.integer("t"), threshold.hexbytes("public_key", POINT_BYTES)
    keys = tuple(
        _hex(k, f"threshold.verification_keys[{i}]", POINT_BYTES)
        for i, k in enumerate(threshold.items("verification_keys"))
    )
    try:
        return ThresholdPublicKey(t, public_key, keys)
    except ValueError as exc:  # a point that is not canonical or not on the curve, or t
        raise GenesisError(f"threshold: {exc}") from None


def _check_stated_sizes(doc: _Doc, genesis: Genesis) -> None:
    """The file's own ``n`` and ``f`` must be what its validator list implies."""
    if doc.integer("n") != genesis.n:
        raise GenesisError(f"genesis.n: says {doc.integer('n')} but lists {genesis.n} validators")
    if doc.integer("f") != genesis.f:
        raise GenesisError(
            f"genesis.f: says {doc.integer('f')} but n = {genesis.n} gives f = {genesis.f}"
        )
