"""Rollups following a real 4-node cluster under load: verified, gap-free, the same everywhere.

Two rollups (the token ledger on rollup-a, the name registry on rollup-b) are
each followed twice: once from one node (rollup-a over WebSocket, rollup-b
over HTTP) and once over libp2p gossip. Mid-stream the node each direct
subscriber reads from is killed with SIGKILL, so each resumes on another node
(and gossip loses a publisher). Every subscriber must see every height exactly
once; both followers of a rollup the same certified batches, and the example
rollup's state roots must agree height by height whatever served them.
"""

from __future__ import annotations

import json
import pathlib
import random
import urllib.error
import urllib.request
from typing import Any

import cbor2
import trio

from delivery.batch import VerifiedBatch, decode_namespace_batch, verify_namespace_batch
from examples.name_registry import NAME_REGISTRY
from examples.rollup import Rollup, apply_batch, state_root
from examples.token_ledger import TOKEN_LEDGER as LEDGER
from sequencer_net.client.encrypt import seal
from sequencer_net.client.http import get_json, post
from sequencer_net.client.submit import submit
from sequencer_net.client.subscribe import Subscription
from tests.cluster import Processes, committing_async, wait_until

ACCOUNTS = ["alice", "bob", "carol", "dave"]


def transfers(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [
        json.dumps(
            {"from": rng.choice(ACCOUNTS), "to": rng.choice(ACCOUNTS), "amount": rng.randint(1, 40)}
        ).encode()
        for _ in range(count)
    ]


def registrations(tick: int) -> list[bytes]:
    """Two name-registry operations: a registration (some names taken twice) and a transfer."""
    owner = ACCOUNTS[tick % len(ACCOUNTS)]
    operations = [
        {"op": "register", "name": f"n{tick % 9}", "owner": owner},
        {"op": "transfer", "name": f"n{tick % 5}", "owner": "eve", "by": owner},
    ]
    return [json.dumps(op).encode() for op in operations]


async def load(c: Processes, seconds: float, rate: int) -> int:
    """Offer ``rate`` transfers per second to live nodes for ``seconds``; how many were accepted."""
    accepted, tick = 0, 0
    for tick in range(int(seconds * 10)):
        batch = [seal(c.genesis, "rollup-a", p).data for p in transfers(rate // 10, tick)]
        batch += [seal(c.genesis, "rollup-b", p).data for p in registrations(tick)]
        for i in (2, 3):  # never killed in this test
            try:
                answer = await trio.to_thread.run_sync(
                    post, c.api(i), "/v1/transactions/batch", cbor2.dumps(batch[i - 2 :: 2])
                )
            except Exception:
                continue
            accepted += sum(r["status"] == "pending" for r in answer["results"])
        await trio.sleep(0.1)
    return accepted


async def collect(sub: Subscription, out: list[VerifiedBatch], stop_at: list[int]) -> None:
    """Append verified batches until one at or past ``stop_at[0]`` (0: not decided yet)."""
    async with sub.batches() as batches:
        async for batch in batches:
            out.append(batch)
            if stop_at[0] and batch.height >= stop_at[0]:
                return


async def test_two_rollups_agree_across_nodes_and_carriers_through_kills(
    tmp_path: pathlib.Path,
) -> None:
    async with committing_async(tmp_path) as c:
        ledger_ws = Subscription(c.genesis, "rollup-a", 1, [c.api(0), c.api(2)], stall_s=3)
        ledger_gossip = Subscription(c.genesis, "rollup-a", 1, [], carrier="gossip")
        registry_http = Subscription(
            c.genesis, "rollup-b", 1, [c.api(1), c.api(3)], carrier="http", stall_s=3
        )
        registry_gossip = Subscription(c.genesis, "rollup-b", 1, [], carrier="gossip")
        subs = [ledger_ws, ledger_gossip, registry_http, registry_gossip]
        got: list[list[VerifiedBatch]] = [[] for _ in subs]
        stop_at = [0]
        async with trio.open_nursery() as nursery:
            for sub, out in zip(subs, got, strict=True):
                nursery.start_soon(collect, sub, out, stop_at)
            loaded = trio.Event()

            async def offer() -> None:
                await load(c, 12, 50)
                loaded.set()

            nursery.start_soon(offer)
            await trio.sleep(3)
            c.kill(0)  # the ledger's WebSocket node: it resumes on node 2
            await trio.to_thread.run_sync(lambda: wait_until(lambda: c.certified(2) > 0, 60))
            c.start(0)
            await trio.to_thread.run_sync(
                lambda: wait_until(lambda: c.certified(0) >= c.certified(2) - 2, 60)
            )
            c.kill(1)  # the registry's HTTP node: it resumes on node 3
            await loaded.wait()
            await trio.to_thread.run_sync(
                lambda: wait_until(lambda: c.certified(2) >= 1 and c.certified(3) >= 1, 30)
            )
            stop_at[0] = min(c.certified(2), c.certified(3))
            with trio.fail_after(60):
                while min(len(out) for out in got) < stop_at[0]:  # noqa: ASYNC110
                    await trio.sleep(0.1)
            nursery.cancel_scope.cancel()
    height = stop_at[0]
    for out in got:
        assert [b.height for b in out[:height]] == list(range(1, height + 1))  # no gap, no dup
    for direct, gossiped, rollup in ((0, 1, LEDGER), (2, 3, NAME_REGISTRY)):
        assert [b.batch_hash for b in got[direct][:height]] == [
            b.batch_hash for b in got[gossiped][:height]
        ]
        assert roots(rollup, got[direct][:height]) == roots(rollup, got[gossiped][:height])
    assert [b.batch_hash for b in got[0][:height]] == [b.batch_hash for b in got[2][:height]]
    assert sum(len(b.leaves) for b in got[0][:height]) > 100  # the load really went through
    assert len(set(roots(NAME_REGISTRY, got[2][:height]))) > 5  # the registry really changed
    assert all(sub.bad_nodes == {} for sub in subs)
    assert ledger_gossip.delivered["gossip"] > 0 and registry_gossip.delivered["gossip"] > 0


def roots(rollup: Rollup[Any], batches: list[VerifiedBatch]) -> list[str]:
    """The rollup's state root after each batch."""
    state, trail = rollup.initial, []
    for batch in batches:
        state = apply_batch(rollup.transition, state, (x.plaintext for x in batch.leaves)).state
        trail.append(state_root(state))
    return trail


async def test_a_namespace_batch_and_a_proof_of_absence_verify_from_genesis(
    tmp_path: pathlib.Path,
) -> None:
    async with committing_async(tmp_path) as c:
        payloads = [b'{"from": "alice", "to": "bob", "amount": 5}', b"another"]
        records: list[dict[str, Any]] = []
        async with trio.open_nursery() as nursery:  # the trio client: both at once, one thread
            for payload in payloads:
                nursery.start_soon(_submit, c, payload, records)
        assert [r["status"] for r in records] == ["decrypted", "decrypted"]
        record = next(r for r in records if r["plaintext"] == payloads[0].hex())
        digest, height = record["digest"], record["height"]
        await trio.to_thread.run_sync(lambda: wait_until(lambda: c.certified(1) >= height, 30))
        committee = c.genesis.committee()
        present = decode_namespace_batch(
            _get_cbor(c.api(1), f"/v1/namespaces/rollup-a/batches/{height}")
        )
        verified = verify_namespace_batch(committee, present, "rollup-a", height)
        assert digest in [leaf.digest.hex() for leaf in verified.leaves]
        absent = decode_namespace_batch(
            _get_cbor(c.api(1), f"/v1/namespaces/rollup-b/batches/{height}")
        )
        assert verify_namespace_batch(committee, absent, "rollup-b", height).leaves == ()
        for bad in ("/v1/namespaces/nope/batches/1", f"/v1/namespaces/rollup-a/batches/{10**9}"):
            status = _status(c.api(1), bad)
            assert status == 404
        assert _status(c.api(1), "/v1/namespaces/rollup-a/batches/0") == 400


async def _submit(c: Processes, payload: bytes, out: list[dict[str, Any]]) -> None:
    out.append(await submit(c.api(0), c.genesis, "rollup-a", payload, 30))


def _wait_decrypted(api: str, digest: str) -> dict[str, object]:
    record: dict[str, object] = {}

    def done() -> bool:
        record.update(get_json(api, f"/v1/transactions/{digest}"))
        return record.get("status") == "decrypted"

    wait_until(done, 30)
    return record


def _get_cbor(api: str, path: str) -> bytes:
    request = urllib.request.Request(f"http://{api}{path}", headers={"accept": "application/cbor"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return bytes(response.read())


def _status(api: str, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://{api}{path}", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
