"""Rollups following a real 4-node cluster over libp2p gossip: every height, nothing missing.

A ``seqnet subscribe --carrier gossip`` process (not a validator) follows
rollup-a from height 1 while more than a thousand transactions are offered
over 30 seconds; it listens, and a second subscriber that dials only it (no
validator, no fetching) follows through it as a relay. Both must see every
height once, in order, and every accepted transaction of the rollup exactly
once; the validators must have published on the topic.
"""

from __future__ import annotations

import json
import pathlib
import subprocess
import threading
import urllib.request
from typing import IO

import trio

from delivery.batch import VerifiedBatch
from ops.load import make_txs, submit_batch
from sequencer_net.client.gossip import GossipOptions
from sequencer_net.client.subscribe import Subscription
from tests.cluster import Processes, seqnet, wait_until

LOAD_S = 30
RATE = 40  # rollup-a transactions per second (and a few for rollup-b)


def lines(stream: IO[bytes], out: list[str]) -> threading.Thread:
    """Collect a pipe's lines in a thread (the subprocess must never block on a full pipe)."""

    def read() -> None:
        for line in stream:
            out.append(line.decode())

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    return thread


def start_relay(genesis: pathlib.Path) -> subprocess.Popen[bytes]:
    """``seqnet subscribe`` over gossip, listening for other subscribers (JSON lines out)."""
    return subprocess.Popen(
        seqnet(
            "subscribe", "--carrier", "gossip", "--json", "--rollup", "rollup-a",
            "--genesis", str(genesis), "--listen", "/ip4/127.0.0.1/tcp/0",
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip


def offer(c: Processes, accepted: set[str], stop: threading.Event) -> None:
    """``RATE`` rollup-a transactions a second to the nodes in turn; note the accepted digests."""
    for tick in range(LOAD_S * 10):
        if stop.is_set():
            return
        txs = make_txs(c.genesis, RATE // 10, ["rollup-a"], tag=f"t{tick}")
        txs += make_txs(c.genesis, 1, ["rollup-b"], tag=f"b{tick}")
        try:
            verdicts = submit_batch(c.api(tick % c.n), txs)
        except Exception:
            continue
        accepted.update(
            tx.digest.hex()
            for tx, verdict in zip(txs, verdicts, strict=True)
            if verdict == "pending" and tx.namespace == "rollup-a"
        )
        stop.wait(0.1)


async def test_gossip_subscriber_and_its_relay_get_every_height_under_load(
    tmp_path: pathlib.Path,
) -> None:
    c = Processes(tmp_path)
    c.start_all()
    relay: subprocess.Popen[bytes] | None = None
    out: list[str] = []
    err: list[str] = []
    through_relay: list[VerifiedBatch] = []
    accepted: set[str] = set()
    stop = threading.Event()
    try:
        await trio.to_thread.run_sync(c.wait_committing)
        relay = start_relay(tmp_path / "genesis.json")
        assert relay.stdout is not None and relay.stderr is not None
        lines(relay.stdout, out)
        lines(relay.stderr, err)
        await trio.to_thread.run_sync(lambda: wait_until(lambda: _announced(err) is not None, 30))
        relay_address = _announced(err)
        assert relay_address is not None
        start = c.certified(0) + 10  # gossip only: it cannot have heights before it joined
        follower = Subscription(
            c.genesis,
            "rollup-a",
            start,
            [],
            carrier="gossip",
            gossip=GossipOptions(peers=[relay_address], fetch_from=[]),
        )
        load = threading.Thread(target=offer, args=(c, accepted, stop), daemon=True)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_collect, follower, through_relay)
            load.start()
            await trio.to_thread.run_sync(load.join)
            await trio.sleep(2)
            end = c.certified(0)
            with trio.fail_after(60):
                while len(out) < end or (through_relay and through_relay[-1].height < end):  # noqa: ASYNC110
                    await trio.sleep(0.2)
            nursery.cancel_scope.cancel()
        published = _metric(c, "seqnet_gossip_batches_published_total", 'outcome="yes"')
    finally:
        stop.set()
        if relay is not None:
            relay.terminate()
            relay.wait(10)
        c.stop_all()
    records = [json.loads(line) for line in out]
    assert [r["height"] for r in records[:end]] == list(range(1, end + 1)), "a gap or a duplicate"
    delivered = [tx["digest"] for r in records[:end] for tx in r["transactions"]]
    assert len(delivered) == len(set(delivered)), "a transaction delivered twice"
    assert len(accepted) >= 1000
    assert accepted <= set(delivered), f"{len(accepted - set(delivered))} accepted, never delivered"
    assert not [line for line in err if "does not verify" in line]
    relayed = [b.height for b in through_relay if b.height <= end]
    assert relayed == list(range(start, end + 1)), "the relay missed a height"
    by_height = {r["height"]: r["batch_hash"] for r in records}
    assert all(by_height[b.height] == b.batch_hash.hex() for b in through_relay if b.height <= end)
    assert follower.delivered["gossip"] == len(through_relay) and not follower.delivered["fetch"]
    assert published > 0


async def _collect(sub: Subscription, out: list[VerifiedBatch]) -> None:
    async with sub.batches() as batches:
        async for batch in batches:
            out.append(batch)


def _announced(err: list[str]) -> str | None:
    found = [line.split()[-1] for line in err if line.startswith("gossip peer ")]
    return found[0] if found else None


def _metric(c: Processes, name: str, labels: str) -> float:
    """Sum of ``name{labels}`` over every node's /metrics (a real scrape)."""
    total = 0.0
    for member in c.members:
        with urllib.request.urlopen(f"http://{member.metrics}/metrics", timeout=5) as response:
            for line in response.read().decode().splitlines():
                if line.startswith(name) and labels in line:
                    total += float(line.split()[-1])
    return total
