"""Attacks from outside on real validator processes: what once broke a running cluster.

- A ciphertext with a valid signature whose payload opens to nothing (its key
  check fits no key) is ordered while a validator is down; that validator
  restarts, catches up past it and reaches the live nodes' verdict ("invalid"),
  then keeps decrypting. Peers' stored keys cannot prove that verdict (no key
  matches the ciphertext's key check), so the node must combine shares itself.
- Bytes of a transaction decrypted long ago are replayed after the chain moved
  on by more than the commits a node replays at start and the whole cluster
  restarted: every node refuses them (409) and nothing is ordered twice.
- A validator's database truncated to 0 bytes: the node refuses to start (it may
  have voted before and lost the record), unless the operator says it is new;
  then it catches up and votes only in rounds after those its peers certified.
- A database damaged in the middle: the node stops with one line naming the
  file, never a traceback, and never runs on a store it cannot trust.
"""

from __future__ import annotations

import pathlib
import random
import subprocess
from collections import Counter
from typing import Any

from mev import kem
from ops.health import metric_samples
from sequencer_net.base import codec
from sequencer_net.client.http import get_json
from tests.cluster import Processes, committing, encrypted, post_tx, seqnet, wait_until
from tests.cluster import unopenable as unopenable_ciphertext


def tx_status(c: Processes, node: int, data: bytes) -> dict[str, Any]:
    digest = kem.digest(codec.decode(kem.Ciphertext, data)).hex()
    try:
        answer: dict[str, Any] = get_json(c.api(node), f"/v1/transactions/{digest}")
    except Exception:  # the node may be starting
        return {"status": "down"}
    return answer


def decided(c: Processes, node: int, data: bytes, verdict: str) -> bool:
    return tx_status(c, node, data).get("status") == verdict


def failed_rounds(c: Processes, node: int) -> dict[tuple[str, str], float]:
    """Node's ``seqnet_round_failures_total`` by (leader, cause)."""
    samples = metric_samples(c.members[node], "seqnet_round_failures_total")
    return {(s.labels["leader"], s.labels["cause"]): s.value for s in samples}


def test_a_validator_down_while_an_unopenable_ciphertext_was_ordered_agrees_it_is_invalid(
    tmp_path: pathlib.Path,
) -> None:
    with committing(tmp_path) as c:
        c.kill(3)
        unopenable = unopenable_ciphertext(c.genesis, "rollup-a")
        honest = encrypted(c.genesis, "rollup-a", b"ordered after it")
        assert post_tx(c.api(0), unopenable)[0] == 202  # its signature holds
        assert post_tx(c.api(0), honest)[0] == 202
        wait_until(lambda: decided(c, 0, unopenable, "invalid"), 30)
        wait_until(lambda: decided(c, 0, honest, "decrypted"), 30)
        wait_until(lambda: failed_rounds(c, 0).get(("3", "no-proposal"), 0) > 0, 30)
        assert metric_samples(c.members[0], "seqnet_connected_validators")[0].value == 2
        height = int(tx_status(c, 0, unopenable)["height"])
        c.start(3)  # restarts from its store, catches up past that height
        wait_until(lambda: decided(c, 3, unopenable, "invalid"), 60)
        wait_until(lambda: decided(c, 3, honest, "decrypted"), 30)
        later = encrypted(c.genesis, "rollup-b", b"submitted through the restarted node")
        assert post_tx(c.api(3), later)[0] == 202
        wait_until(lambda: decided(c, 3, later, "decrypted"), 30)
        after = int(tx_status(c, 3, later)["height"])
        wait_until(lambda: all(decided(c, i, later, "decrypted") for i in range(4)), 30)
    assert c.exit_codes == [0, 0, 0, 0]
    stores = [c.store(i) for i in range(4)]
    batches = [s.batches(height, after - height + 1) for s in stores]
    assert all(b == batches[0] for b in batches)  # same verdicts, same keys, every node
    assert all(s.decrypted_tip() >= after for s in stores)


def test_replayed_bytes_are_refused_by_every_node_after_a_full_restart(
    tmp_path: pathlib.Path,
) -> None:
    c = Processes(tmp_path, heartbeat_ms=10)  # empty blocks come fast: 300 heights in seconds
    c.start_all()
    try:
        c.wait_committing()
        tx = encrypted(c.genesis, "rollup-a", b"pay once")
        assert post_tx(c.api(0), tx)[0] == 202
        wait_until(lambda: decided(c, 0, tx, "decrypted"), 30)
        height = int(tx_status(c, 0, tx)["height"])
        wait_until(lambda: min(c.height(i) for i in range(4)) > height + 300, 120)
        assert c.stop_all() == [0, 0, 0, 0]
        c.start_all()
        c.wait_committing()
        for i in range(4):
            status, body = post_tx(c.api(i), tx)
            assert status == 409, (i, status, body)
        resumed = max(c.height(i) for i in range(4))
        wait_until(lambda: min(c.height(i) for i in range(4)) > resumed + 5, 60)
        assert all(tx_status(c, i, tx)["height"] == height for i in range(4))
    finally:
        c.stop_all()
    assert c.exit_codes == [0, 0, 0, 0]
    store = c.store(0)
    counts = Counter(
        t.digest for b in store.batches(1, store.decrypted_tip()) for t in b.txs if t.plaintext
    )
    assert counts == {kem.digest(codec.decode(kem.Ciphertext, tx)): 1}  # ordered once


def test_a_validator_whose_database_was_truncated_starts_only_when_told_it_is_new(
    tmp_path: pathlib.Path,
) -> None:
    with committing(tmp_path) as c:
        c.kill(3)
        status = [c.status(i) for i in range(3)]
        # node 3 may have voted up to the round its peers are in now, not beyond
        voted_at_most = max(int(s["round"]) for s in status if s is not None)
        for name in ("node-3.db", "node-3.db-wal", "node-3.db-shm"):
            (tmp_path / name).write_bytes(b"")  # a careless operator's accident
        wait_until(lambda: min(c.height(i) for i in range(3)) > 3, 30)
        run = subprocess.run(
            seqnet("node", "--config", str(tmp_path / "node-3.toml")),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert run.returncode != 0
        assert "Traceback" not in run.stderr
        last = run.stderr.strip().splitlines()[-1]
        assert "may have voted before" in last and "--new-node" in last, last
        c.start(3, "--new-node")  # the operator says so: it starts, abstaining where peers were
        wait_until(lambda: c.height(3) >= min(c.height(i) for i in range(3)), 60)
    assert c.exit_codes == [0, 0, 0, 0]
    abstained = [
        int(line.split("through_round=")[1].split()[0])
        for line in (tmp_path / "node-3.log").read_text().splitlines()
        if "abstaining" in line
    ]
    assert abstained and abstained[0] >= voted_at_most


def test_a_damaged_database_stops_the_node_with_one_line(tmp_path: pathlib.Path) -> None:
    c = Processes(tmp_path, heartbeat_ms=10)
    c.start_all()
    try:
        c.wait_committing()
        wait_until(lambda: c.height(3) > 300, 60)
        assert c.stop(3) == 0  # a clean stop: everything is in the main file
        db = tmp_path / "node-3.db"
        data = bytearray(db.read_bytes())
        third = len(data) // 3
        data[third : 2 * third] = random.Random(7).randbytes(third)  # the middle, header intact
        db.write_bytes(bytes(data))
        run = subprocess.run(
            seqnet("node", "--config", str(tmp_path / "node-3.toml")),
            capture_output=True,
            text=True,
            timeout=90,
        )
    finally:
        codes = c.stop_all()
    assert codes == [0, 0, 0]
    assert run.returncode != 0
    assert "Traceback" not in run.stderr
    last = run.stderr.strip().splitlines()[-1]
    assert "node-3.db: damaged" in last, last
