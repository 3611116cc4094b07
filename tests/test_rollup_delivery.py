"""Rollups following a real 4-node cluster under load: verified, gap-free, the same everywhere.

Two subscribers of one rollup read from different nodes over different
carriers (WebSocket and HTTP). Mid-stream the node each reads from is killed
with SIGKILL, so each resumes on another node. Both must see every height
exactly once, the same certified batches, and the example rollup's state
roots must agree height by height.
"""

from __future__ import annotations

import json
import pathlib
import random
import urllib.error
import urllib.request

import cbor2
import trio

from delivery.batch import VerifiedBatch, decode_namespace_batch, verify_namespace_batch
from delivery.header import batch_hash
from examples.rollup import apply_batch, state_root
from examples.token_ledger import TOKEN_LEDGER as LEDGER
from sequencer_net.client.encrypt import seal
from sequencer_net.client.http import get_json, post
from sequencer_net.client.subscribe import Subscription
from tests.cluster import Processes, wait_until

ACCOUNTS = ["alice", "bob", "carol", "dave"]


def transfers(count: int, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    return [
        json.dumps(
            {"from": rng.choice(ACCOUNTS), "to": rng.choice(ACCOUNTS), "amount": rng.randint(1, 40)}
        ).encode()
        for _ in range(count)
    ]


async def load(c: Processes, seconds: float, rate: int) -> int:
    """Offer ``rate`` transfers per second to live nodes for ``seconds``; how many were accepted."""
    accepted, tick = 0, 0
    for tick in range(int(seconds * 10)):
        batch = [seal(c.genesis, "rollup-a", p).data for p in transfers(rate // 10, tick)]
        batch.append(seal(c.genesis, "rollup-b", b"not for rollup-a").data)
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


def certified(c: Processes, i: int) -> int:
    status = c.status(i)
    return -1 if status is None else int(status.get("certified_height", -1))


async def test_two_subscribers_resume_across_nodes_and_agree(tmp_path: pathlib.Path) -> None:
    c = Processes(tmp_path)
    c.start_all()
    try:
        await trio.to_thread.run_sync(c.wait_committing)
        via_ws = Subscription(c.genesis, "rollup-a", 1, [c.api(0), c.api(2)], stall_s=3)
        via_http = Subscription(
            c.genesis, "rollup-a", 1, [c.api(1), c.api(3)], carrier="http", stall_s=3
        )
        got_ws: list[VerifiedBatch] = []
        got_http: list[VerifiedBatch] = []
        stop_at = [0]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(collect, via_ws, got_ws, stop_at)
            nursery.start_soon(collect, via_http, got_http, stop_at)
            loaded = trio.Event()

            async def offer() -> None:
                await load(c, 12, 50)
                loaded.set()

            nursery.start_soon(offer)
            await trio.sleep(3)
            c.kill(0)  # the WebSocket subscriber's node: it resumes on node 2
            await trio.to_thread.run_sync(lambda: wait_until(lambda: certified(c, 2) > 0, 60))
            c.start(0)
            await trio.to_thread.run_sync(
                lambda: wait_until(lambda: certified(c, 0) >= certified(c, 2) - 2, 60)
            )
            c.kill(1)  # the HTTP subscriber's node: it resumes on node 3
            await loaded.wait()
            await trio.to_thread.run_sync(
                lambda: wait_until(lambda: certified(c, 2) >= 1 and certified(c, 3) >= 1, 30)
            )
            stop_at[0] = min(certified(c, 2), certified(c, 3))
            with trio.fail_after(60):
                while len(got_ws) < stop_at[0] or len(got_http) < stop_at[0]:  # noqa: ASYNC110
                    await trio.sleep(0.1)
            nursery.cancel_scope.cancel()
    finally:
        c.stop_all()
    height = stop_at[0]
    for got in (got_ws, got_http):
        assert [b.height for b in got[:height]] == list(range(1, height + 1))  # no gap, no dup
    assert [batch_hash(b.header) for b in got_ws[:height]] == [
        batch_hash(b.header) for b in got_http[:height]
    ]
    roots = []
    for got in (got_ws, got_http):
        state, trail = LEDGER.initial, []
        for batch in got[:height]:
            state = apply_batch(LEDGER.transition, state, (x.plaintext for x in batch.leaves)).state
            trail.append(state_root(state))
        roots.append(trail)
    assert roots[0] == roots[1]
    assert sum(len(b.leaves) for b in got_ws[:height]) > 100  # the load really went through
    assert via_ws.bad_nodes == {} and via_http.bad_nodes == {}


async def test_a_namespace_batch_and_a_proof_of_absence_verify_from_genesis(
    tmp_path: pathlib.Path,
) -> None:
    c = Processes(tmp_path)
    c.start_all()
    try:
        await trio.to_thread.run_sync(c.wait_committing)
        data = seal(c.genesis, "rollup-a", b'{"from": "alice", "to": "bob", "amount": 5}').data
        digest = post(c.api(0), "/v1/transactions", data)["digest"]
        record = await trio.to_thread.run_sync(lambda: _wait_decrypted(c.api(0), digest))
        height = record["height"]
        await trio.to_thread.run_sync(lambda: wait_until(lambda: certified(c, 1) >= height, 30))
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
    finally:
        c.stop_all()


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
