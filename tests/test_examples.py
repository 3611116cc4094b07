"""The example rollups: pure, deterministic state transitions, and the programs that run them.

The transition functions are tested alone (what applies, what is skipped,
that equal histories give equal roots); the programs run as real processes
against WebSocket nodes on 127.0.0.1 that serve certified batches, one of
them lying.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import subprocess
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import pytest
import trio

from examples.name_registry import NAME_REGISTRY, registry_step
from examples.rollup import (
    MAX_TX_BYTES,
    Report,
    Rollup,
    apply_batch,
    canonical_json,
    json_object,
    state_root,
)
from examples.token_ledger import STARTING_BALANCE, TOKEN_LEDGER, transfer
from sequencer_net.base import codec
from tests.test_subscribe import NS, FakeNode, chain, genesis_file, serve, tampered, then

ROOT = pathlib.Path(__file__).parent.parent


def tx(**fields: Any) -> bytes:
    return json.dumps(fields).encode()


def pay(sender: str, receiver: str, amount: Any) -> bytes:
    return tx(**{"from": sender, "to": receiver, "amount": amount})


def run(rollup: Rollup[Any], *plaintexts: bytes | None) -> Any:
    return apply_batch(rollup.transition, rollup.initial, plaintexts).state


# --- strict JSON ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "plaintext",
    [
        None,  # an invalid leaf: the ciphertext opened to nothing
        b"\xff{}",  # not UTF-8
        b"{not json",
        b"[1, 2]",  # not an object
        b'"text"',
        b'{"a": 1, "a": 2}',  # duplicate keys
        b'{"a": NaN}',
        b'{"a": Infinity}',
        b"[" * 600 + b"]" * 600,  # deep nesting
        b'{"a": "' + b"x" * MAX_TX_BYTES + b'"}',  # too long
    ],
)
def test_only_a_plain_json_object_is_a_transaction(plaintext: bytes | None) -> None:
    assert json_object(plaintext) is None


def test_a_json_object_is_read() -> None:
    assert json_object(b' {"b": [1], "a": "\xc3\xa9"} ') == {"a": "é", "b": [1]}


def test_the_root_is_the_hash_of_canonical_json() -> None:
    assert canonical_json({"bob": 1, "alice": {"z": "é", "a": 2}}) == (
        '{"alice":{"a":2,"z":"é"},"bob":1}'.encode()
    )
    assert state_root({"bob": 130, "alice": 70}) == state_root({"alice": 70, "bob": 130})
    assert state_root({"alice": 70, "bob": 130}) == (
        hashlib.sha256(b'{"alice":70,"bob":130}').hexdigest()
    )
    assert state_root({}) == hashlib.sha256(b"{}").hexdigest()


# --- the token ledger ---------------------------------------------------------------------------


def test_a_transfer_moves_tokens_and_every_account_starts_with_100() -> None:
    assert STARTING_BALANCE == 100
    assert run(TOKEN_LEDGER, pay("alice", "bob", 30)) == {"alice": 70, "bob": 130}
    assert run(TOKEN_LEDGER, pay("alice", "bob", 100)) == {"alice": 0, "bob": 200}
    assert run(TOKEN_LEDGER, pay("alice", "bob", 30), pay("bob", "carol", 130)) == {
        "alice": 70,
        "bob": 0,
        "carol": 230,
    }


@pytest.mark.parametrize(
    "plaintext",
    [
        pay("alice", "bob", 101),  # overdraws
        pay("alice", "alice", 1),  # to itself
        pay("alice", "bob", 0),
        pay("alice", "bob", -5),
        pay("alice", "bob", 1.5),
        pay("alice", "bob", 30.0),
        pay("alice", "bob", "30"),
        pay("alice", "bob", True),
        pay("", "bob", 1),
        pay("alice", 7, 1),
        tx(**{"from": "alice", "to": "bob"}),  # no amount
        tx(**{"from": "alice", "to": "bob", "amount": 1, "memo": "hi"}),  # more than the shape
        b'{"from": "alice", "to": "bob", "amount": 1, "amount": 2}',
        None,
        b"transfer 5 to bob",
    ],
)
def test_a_transfer_that_is_not_one_is_skipped(plaintext: bytes | None) -> None:
    assert transfer({}, plaintext) is None
    step = apply_batch(transfer, {"alice": 100}, [plaintext, pay("alice", "bob", 1)])
    assert (step.state, step.applied, step.skipped) == ({"alice": 99, "bob": 101}, 1, 1)


def test_the_order_of_transfers_decides_which_apply() -> None:
    first = [pay("alice", "bob", 100), pay("bob", "carol", 150)]
    step = apply_batch(transfer, {}, first)
    assert (step.state, step.applied, step.skipped) == ({"alice": 0, "bob": 50, "carol": 250}, 2, 0)
    step = apply_batch(transfer, {}, first[::-1])
    assert (step.state, step.applied, step.skipped) == ({"alice": 0, "bob": 200}, 1, 1)


def test_a_transition_never_changes_the_state_it_was_given() -> None:
    before = {"alice": 50}
    after = transfer(before, pay("alice", "bob", 20))
    assert before == {"alice": 50} and after == {"alice": 30, "bob": 120}


def test_equal_histories_give_equal_roots() -> None:
    history = [pay("a", "b", 10), None, pay("b", "c", 105), pay("c", "a", 60), b"{}"]
    roots = set()
    for _ in range(3):
        step = apply_batch(transfer, {}, list(history))
        roots.add(state_root(step.state))
    assert len(roots) == 1
    assert roots != {state_root(apply_batch(transfer, {}, history[::-1]).state)}


# --- the name registry --------------------------------------------------------------------------


def register(name: str, owner: str) -> bytes:
    return tx(op="register", name=name, owner=owner)


def give(name: str, owner: str, by: str) -> bytes:
    return tx(op="transfer", name=name, owner=owner, by=by)


def test_the_first_register_wins_and_only_the_owner_transfers() -> None:
    step = apply_batch(
        registry_step,
        {},
        [
            register("seq.eth", "alice"),
            register("seq.eth", "mallory"),  # taken
            give("seq.eth", "mallory", by="mallory"),  # not the owner
            give("seq.eth", "bob", by="alice"),
            give("seq.eth", "alice", by="alice"),  # alice no longer owns it
            give("free.eth", "bob", by="bob"),  # not registered
            register("free.eth", "carol"),
        ],
    )
    assert step.state == {"seq.eth": "bob", "free.eth": "carol"}
    assert (step.applied, step.skipped) == (3, 4)


@pytest.mark.parametrize(
    "plaintext",
    [
        tx(op="register", name="x.eth", owner="alice", by="alice"),  # register takes no "by"
        tx(op="transfer", name="x.eth", owner="bob"),  # transfer needs "by"
        tx(op="burn", name="x.eth", owner="alice"),
        tx(op=["register"], name="x.eth", owner="alice"),
        tx(name="x.eth", owner="alice"),
        tx(op="register", name="", owner="alice"),
        tx(op="register", name="x.eth", owner=5),
        None,
        b"register x.eth",
    ],
)
def test_an_operation_that_is_not_one_is_skipped(plaintext: bytes | None) -> None:
    assert registry_step({}, plaintext) is None
    assert registry_step({"x.eth": "alice"}, plaintext) is None


# --- the programs, as processes against nodes ------------------------------------------------


LEDGER_TXS: Mapping[int, Sequence[bytes | None]] = {
    1: [pay("alice", "bob", 30), pay("bob", "carol", 200)],  # the second overdraws
    2: [],
    3: [None, b"junk", pay("carol", "alice", 5)],
}
REGISTRY_TXS: Mapping[int, Sequence[bytes | None]] = {
    1: [register("seq.eth", "alice"), register("seq.eth", "bob")],
    2: [give("seq.eth", "bob", by="alice")],
    3: [],
}


def expected(rollup: Rollup[Any], txs: Mapping[int, Sequence[bytes | None]]) -> list[Report]:
    state, out = rollup.initial, []
    for height in sorted(txs):
        step = apply_batch(rollup.transition, state, txs[height])
        state = step.state
        out.append(Report(height, state_root(state), step.applied, step.skipped))
    return out


async def example(name: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(60):
        return await trio.run_process(
            [sys.executable, "-m", f"examples.{name}", *args],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=ROOT,
        )


@pytest.mark.parametrize(
    ("rollup", "txs"), [(TOKEN_LEDGER, LEDGER_TXS), (NAME_REGISTRY, REGISTRY_TXS)]
)
async def test_an_example_prints_the_root_after_each_height_whatever_a_liar_sends(
    nursery: trio.Nursery, tmp_path: pathlib.Path, rollup: Rollup[Any], txs: Mapping[int, Any]
) -> None:
    served = {b.certificate.header.height: codec.encode(b) for b in chain(3, txs.__getitem__)}
    honest = FakeNode(lambda start: [served[h] for h in range(start, 4)])
    liar = FakeNode(then(lambda start: [served[1]], tampered(2)))
    nodes = await serve(nursery, liar, honest)
    args = ["--genesis", str(genesis_file(tmp_path)), "--rollup", NS, "--count", "3"]
    args += ["--node", nodes[0], "--node", nodes[1]]

    as_json = await example(rollup.name, *args, "--json")
    assert as_json.returncode == 0, as_json.stderr
    reports = [Report(**json.loads(line)) for line in as_json.stdout.decode().splitlines()]
    assert reports == expected(rollup, txs)
    assert liar.address in as_json.stderr.decode()  # named, and not followed

    as_text = await example(rollup.name, *args)
    assert as_text.returncode == 0, as_text.stderr
    assert as_text.stdout.decode().splitlines() == [
        f"height {r.height} root {r.root}" for r in expected(rollup, txs)
    ]


def test_an_example_fails_in_one_line_without_a_genesis(tmp_path: pathlib.Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.token_ledger", "--rollup", NS, "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert result.stderr.startswith("token_ledger: error: ") and result.stderr.count("\n") == 1
