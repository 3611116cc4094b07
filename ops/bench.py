"""Throughput and latency of a real 4-process cluster on this machine, to decrypted and to rollup.

    seqnet bench [--nodes N] [--rates R,...] [--seconds S] [--backlog B] [--tx-bytes B]
                 [--carrier C] [--no-baseline] [--json] [--plot PATH]

Starts N `seqnet node` processes on 127.0.0.1 (fresh keys in a temp dir), waits
until they commit, starts a rollup follower (``ops.load.RollupFollower``: one
client-library ``Subscription`` per namespace in a child process: WebSocket
carrier reading from the last node, or with ``--carrier gossip`` the rollup
topics over libp2p from every validator), then:

1. steady load: for each rate, transactions (pre-encrypted, so the client's
   own crypto is not in the loop) are submitted in batches every 50 ms, each
   what is due at that rate so far (open loop: a slow submit makes the next
   batch larger, not the rate lower), spread over the nodes but the last (the
   one the rollup reads from; with one node, that one); latency is from the
   submit request to the moment a client polling node 0's ``/v1/batches``
   every 5 ms sees the transaction decrypted ("client"), and to the moment
   its certified namespace batch, verified from the genesis, reaches the
   rollup follower ("rollup"), p50/p99; the follower's CPU share (of one core)
   is reported so that it is seen not to be the bottleneck;
2. saturation: a backlog submitted at once (requests of 250, each sent when
   the previous one is answered), and the time until all of it is decrypted
   (and verified at the rollup).

Every node process's resident memory (VmRSS from /proc/<pid>/status) is
sampled every 0.2 s: a table gives each node's at the end of each phase (the
cluster committing before any load, each rate once drained, the backlog once
verified), their max, and the highest any node reached during the phase.

Once the nodes are stopped, the load client alone: the same submission code
as the saturation (``ops.load.submit_all``, the same HTTP client, batches of
250 unpaced) sends the backlog's transactions, again and again for at least a
second, to a null sink (``ops.load.NullSink``: a stdlib HTTP server in a child
process that answers ``POST /v1/transactions/batch`` as a node does and checks
nothing). Its rate against the saturation's tells whether the client or the
cluster is what saturates.

Then the cost of certificates and proofs per batch, from real batches of the
run: a few heights holding each rate's transactions (and the backlog's) are
fetched from the last node as CBOR, every namespace, and split into
certificate, proof and leaves bytes; the height's attestation vote frame is
rebuilt from a signature of its certificate. Once the nodes are stopped,
timeit on the same batches: building the header from the leaves and signing
it, checking one vote, proving and encoding a namespace batch (node side),
verifying certificate + proof (client side).

Baseline, measured in the same run: the per-transaction crypto every node must
do (ciphertext check + share + combine) on one core. ``ceiling`` = cores /
(n x that cost) is what the cluster could reach if it did nothing but crypto;
throughput is reported against it.

Last (unless ``--no-baseline``), with the nodes stopped, the other baseline:
what rollups use today, a centralized single sequencer (``ops.centralized``,
a child process: the node's HTTP ingress and a WebSocket stream per namespace,
no consensus, no encryption, batches every 50 ms stored with fsync before a
submission is answered). The same rates for the same seconds with plaintext
transactions of ``--tx-bytes``, latency from the submit request to delivery
to a subscriber in another process (``ops.centralized.Subscriber``), and the
same-size backlog (over 32 connections at once: a request waits for its
batch, so one connection would be bound to one request per batch). One line
gives seqnet's saturation and rollup p50s as ratios to it.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import threading
import time
import timeit
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from delivery.batch import NamespaceBatch, build_namespace_batch, decode_namespace_batch
from delivery.header import BatchCertificate, BatchHeader
from delivery.nmt import Leaf
from ops import health, processes
from ops.centralized import CentralizedProcess, Subscriber, make_plain_txs
from ops.load import (
    SUBMIT_BATCH,
    NullSink,
    RollupFollower,
    Tx,
    Watcher,
    make_txs,
    submit_all,
    submit_batch,
)
from p2p.framing import frame
from sequencer_net.base import codec
from sequencer_net.base.committee import decryption_threshold
from sequencer_net.base.signing import Signed, SigningKey
from sequencer_net.client.http import ClientError, get_cbor
from sequencer_net.client.subscribe import batch_path, check_batch
from sequencer_net.node import network
from sequencer_net.node.batches import header_of
from sequencer_net.node.genesis import Genesis, load_genesis
from sequencer_net.node.wire import SHARES, BatchVote, DecryptedBatch, DecryptedTx

TICK_S = 0.05
SAMPLE_HEIGHTS = 5  # heights per load whose batches the cost table is measured on
TIMEIT_S = 0.03  # one timeit repeat lasts about this long (best of 3 is kept)
FOLLOW_TIMEOUT_S = 30.0  # the rollup follower must have read a batch per namespace by then
RSS_SAMPLE_S = 0.2  # every node's resident memory is read this often
NULL_SINK_S = 1.0  # the load client submits to the null sink for at least this long


def crypto_cost_per_tx_s(n: int, m: int = 200, payload_bytes: int = 256) -> float:
    """One node's crypto per transaction (check + own share + combine), measured now."""
    from mev import kem
    from mev.combine import open_batch
    from mev.keys import deal
    from mev.shares import _make_shares

    public, shares = deal(n, decryption_threshold(n), os.urandom)
    cts = [kem.encrypt(public, "bench", "ns", b"x" * payload_bytes, os.urandom) for _ in range(m)]
    us, batch_id = [ct.u for ct in cts], bytes(32)
    start = time.perf_counter()
    for ct in cts:
        kem.check(public, "bench", ct)
    own = _make_shares(shares[0], public, batch_id, us)
    mine = time.perf_counter() - start
    others = {s.index: _make_shares(s, public, batch_id, us) for s in shares[1 : public.threshold]}
    start = time.perf_counter()
    open_batch(public, "bench", batch_id, cts, {0: own, **others})
    return (mine + time.perf_counter() - start) / m


class Poller:
    """Polls node 0's decrypted batches every 5 ms in a thread (latency resolution)."""

    def __init__(self, member: network.Member) -> None:
        self.watcher = Watcher(member.api)
        self.watcher.next_height = _decrypted(member) + 1
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.watcher.poll()
            time.sleep(0.005)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def node_histogram(member: network.Member) -> dict[float, float]:
    """Cumulative bucket counts of seqnet_submit_to_decrypt_seconds (all namespaces)."""
    buckets: dict[float, float] = {}
    for sample in health.metric_samples(member, "seqnet_submit_to_decrypt_seconds_bucket"):
        le = float(sample.labels["le"])
        buckets[le] = buckets.get(le, 0.0) + sample.value
    return buckets


def quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """The q-quantile of what was observed between two scrapes (linear within a bucket)."""
    edges = sorted(after)
    counts = [after[e] - before.get(e, 0.0) for e in edges]
    total = counts[-1]
    if total <= 0:
        return float("nan")
    target, lower, below = q * total, 0.0, 0.0
    for edge, count in zip(edges, counts, strict=True):
        if count >= target:
            if edge == float("inf"):
                return lower
            return lower + (edge - lower) * (target - below) / max(count - below, 1e-9)
        lower, below = edge, count
    return lower


def _submitters(members: list[network.Member]) -> list[network.Member]:
    """The nodes the load is submitted to: all but the last, which the rollup reads from."""
    return members[:-1] if len(members) > 1 else members


def _rollup_nodes(members: list[network.Member]) -> list[str]:
    """Where the rollup follower reads: the last node, the others only if it fails."""
    return [members[-1].api] + [m.api for m in members[:-1]]


def _ms(ordered: Sequence[float], q: float) -> float:
    """The q-quantile of sorted seconds, in ms (median for 0.5, else the nearest rank below)."""
    if not ordered:
        return float("nan")
    if q == 0.5:
        return 1000 * statistics.median(ordered)
    return 1000 * ordered[int(q * (len(ordered) - 1))]


def _last_height(follower: RollupFollower) -> int:
    return max(follower.latest.values(), default=0)


def offer(
    addresses: Sequence[str], txs: list[Tx], rate: int, seconds: float, in_flight: int = 1
) -> tuple[dict[bytes, float], float]:
    """Submit ``txs`` at ``rate`` for ``seconds``, open loop, round-robin over ``addresses``.

    Every ``TICK_S`` one request with everything due by the end of that tick:
    ``rate`` per second whatever the tick's share (50 tx/s: 2, 3, 2, 3, ...) and
    however long the last submit took (a slow answer makes the next batch
    larger, not the rate lower). With ``in_flight`` > 1 the next request leaves
    on its tick even while earlier ones wait for their answer (the centralized
    sequencer answers once the batch is stored). When each accepted
    transaction's request left, and for how long the load was offered.
    """
    requests: list[tuple[list[Tx], float, Future[list[str]]]] = []
    start = time.monotonic()
    k = 0
    with ThreadPoolExecutor(in_flight) as pool:
        while (elapsed := time.monotonic() - start) < seconds and k < len(txs):
            tick = int(elapsed / TICK_S) + 1
            batch = txs[k : round(rate * TICK_S * tick)]
            if batch:
                address = addresses[len(requests) % len(addresses)]
                sent = time.monotonic()
                answer = pool.submit(submit_batch, address, batch)
                requests.append((batch, sent, answer))
                if in_flight == 1:
                    answer.result()  # meanwhile the next batch grows
                k += len(batch)
            time.sleep(max(0.0, start + tick * TICK_S - time.monotonic()))
        offered_for = time.monotonic() - start
    sent_at: dict[bytes, float] = {}
    for batch, sent, answer in requests:
        for tx, status in zip(batch, answer.result(), strict=True):
            if status == "pending":
                sent_at[tx.digest] = sent
    return sent_at, offered_for


def steady(
    members: list[network.Member],
    txs: list[Tx],
    rate: int,
    seconds: float,
    follower: RollupFollower,
) -> dict[str, float]:
    poller = Poller(members[0])
    hist_before = node_histogram(members[0])
    heights_before, cpu_before = _last_height(follower), time.process_time()
    start = time.monotonic()
    addresses = [node.api for node in _submitters(members)]
    sent_at, submitted_for = offer(addresses, txs, rate, seconds)
    deadline = time.monotonic() + 60
    seen, verified = poller.watcher.seen, follower.seen
    while time.monotonic() < deadline and any(
        d not in seen or (d not in verified and follower.alive) for d in sent_at
    ):
        time.sleep(0.05)
    done = time.monotonic()
    poller.stop()
    hist_after = node_histogram(members[0])
    latencies = sorted(seen[d][0] - t for d, t in sent_at.items() if d in seen)
    rollup = sorted(verified[d][0] - t for d, t in sent_at.items() if d in verified)
    return {
        "rate": rate,
        "offered": len(sent_at) / submitted_for,
        "decrypted": len(latencies),
        "lost": len(sent_at) - len(latencies),
        "p50_ms": _ms(latencies, 0.5),
        "p99_ms": _ms(latencies, 0.99),
        "node_p50_ms": 1000 * quantile(hist_before, hist_after, 0.5),
        "node_p99_ms": 1000 * quantile(hist_before, hist_after, 0.99),
        "rollup_verified": len(rollup),
        "rollup_p50_ms": _ms(rollup, 0.5),
        "rollup_p99_ms": _ms(rollup, 0.99),
        "subscriber_cpu_pct": 100 * follower.cpu_share(start, done),
        "load_cpu_pct": 100 * (time.process_time() - cpu_before) / (done - start),
        "heights_per_s": (_last_height(follower) - heights_before) / (done - start),
    }


def saturation(
    members: list[network.Member], txs: list[Tx], follower: RollupFollower
) -> dict[str, float]:
    poller = Poller(members[0])
    watcher = poller.watcher
    targets = _submitters(members)
    heights_before = _last_height(follower)
    start = time.monotonic()
    submit_all([node.api for node in targets], txs)
    submitted = time.monotonic() - start
    digests = {tx.digest for tx in txs}
    deadline = time.monotonic() + 300
    while not digests <= watcher.seen.keys() and time.monotonic() < deadline:
        time.sleep(0.02)
    took = time.monotonic() - start
    poller.stop()
    while not digests <= follower.seen.keys() and follower.alive and time.monotonic() < deadline:
        time.sleep(0.02)
    verified = digests & follower.seen.keys()
    done = len(digests & watcher.seen.keys())
    return {
        "backlog": len(txs),
        "decrypted": done,
        "seconds": took,
        "submit_s": submitted,
        "rollup_verified": len(verified),
        "rollup_seconds": max((follower.seen[d][0] for d in verified), default=start) - start,
        "heights_per_s": (_last_height(follower) - heights_before) / (time.monotonic() - start),
    }


def load_client_alone(txs: list[Tx], min_seconds: float = NULL_SINK_S) -> dict[str, float]:
    """The saturation's submission code against a :class:`NullSink`: what the client can send.

    ``txs`` are submitted as the saturation submits its backlog, again and again
    until ``min_seconds`` have passed; the rate, and the CPU share (of one core)
    of the client (this process) and of the sink.
    """
    with NullSink() as sink:
        cpu, sink_cpu = time.process_time(), sink.cpu_seconds()
        start, passes = time.monotonic(), 0
        while passes == 0 or time.monotonic() - start < min_seconds:
            submit_all([sink.address], txs)
            passes += 1
        took = time.monotonic() - start
        client_cpu, sink_cpu = time.process_time() - cpu, sink.cpu_seconds() - sink_cpu
    return {
        "submitted": passes * len(txs),
        "seconds": took,
        "tps": passes * len(txs) / took,
        "client_cpu_pct": 100 * client_cpu / took,
        "sink_cpu_pct": 100 * sink_cpu / took,
    }


# ------------------------------------------------------------ node memory


def rss_mib(pid: int) -> float:
    """A process's resident memory (VmRSS) in MiB; NaN if it is gone (or there is no /proc)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return float("nan")


def _nanmax(values: Sequence[float]) -> float:
    return max((v for v in values if not math.isnan(v)), default=float("nan"))


class RssSampler:
    """Every node process's resident memory, read every ``RSS_SAMPLE_S`` in a thread.

    :meth:`mark` closes a phase: each node's RSS now, and the highest any node
    reached since the previous mark (the samples and now).
    """

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self._peak = float("nan")
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self) -> list[float]:
        now = [rss_mib(pid) for pid in self.pids]
        with self._lock:
            self._peak = _nanmax([self._peak, *now])
        return now

    def _run(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_S):
            self._sample()

    def mark(self, phase: str) -> dict[str, Any]:
        """The phase's row: ``nodes_mib`` (now), ``max_mib`` of those, ``peak_mib`` during it."""
        now = self._sample()
        with self._lock:
            peak, self._peak = self._peak, float("nan")
        return {"phase": phase, "nodes_mib": now, "max_mib": _nanmax(now), "peak_mib": peak}

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


# ------------------------------------------------------------ cost per batch


@dataclass(frozen=True, slots=True)
class Served:
    """One namespace's certified batch at one height, as a node serves it (CBOR), decoded."""

    height: int
    namespace: str
    data: bytes
    batch: NamespaceBatch


def sample_heights(follower: RollupFollower, txs: list[Tx], k: int = SAMPLE_HEIGHTS) -> list[int]:
    """Up to ``k`` heights holding ``txs``, spread evenly over those that do."""
    heights = sorted({follower.seen[tx.digest][1] for tx in txs if tx.digest in follower.seen})
    if len(heights) <= k:
        return heights
    return sorted({heights[round(i * (len(heights) - 1) / (k - 1))] for i in range(k)})


def fetch_served(
    member: network.Member, genesis: Genesis, heights: list[int]
) -> list[list[Served]]:
    """Every namespace's batch at each height, over HTTP with ``Accept: application/cbor``."""
    out = []
    for height in heights:
        row = []
        for namespace in genesis.namespaces:
            path = batch_path(namespace, height)
            data = get_cbor(member.api, path, codec.MAX_MESSAGE_BYTES)
            row.append(Served(height, namespace, data, decode_namespace_batch(data)))
        out.append(row)
    return out


def per_call_s(fn: Callable[[], object]) -> float:
    """Seconds per call of ``fn``: best of 3 timeit repeats of about ``TIMEIT_S`` each."""
    timer = timeit.Timer(fn)
    once = timer.timeit(1)
    number = max(1, min(10_000, int(TIMEIT_S / max(once, 1e-7))))
    return min(timer.repeat(3, number)) / number


def _header_and_sign(
    key: SigningKey, chain: str, opened: DecryptedBatch, parent: bytes
) -> Signed[BatchHeader]:
    """What a validator does per height before voting (storing the header aside)."""
    return key.sign(header_of(chain, opened, parent), chain, 0)


def _serve(cert: BatchCertificate, leaves: list[Leaf], namespace: str) -> bytes:
    """What a node does per (height, namespace) before sending it (once: it is cached)."""
    return codec.encode(build_namespace_batch(cert, leaves, namespace))


def batch_costs(genesis: Genesis, heights: list[list[Served]]) -> dict[str, float]:
    """Bytes and CPU of certificates and proofs, averaged over the served batches given.

    Sizes per namespace batch (every namespace at each height, empty ones
    included: a rollup gets one at every height). The vote is the height's
    ``BatchVote`` frame (4-byte length prefix + CBOR, before the transport's
    encryption), rebuilt from a signature of its certificate; each validator
    sends n-1 of them per height. CPU: per height, the header built from all
    its leaves (consensus order within a namespace, as ``leaves_of`` sorts
    them) and signed, and one vote checked; per namespace batch, the node's
    proof + encoding and the client's ``check_batch`` (decode, certificate,
    proof).
    """
    committee, chain = genesis.committee(), genesis.chain_id
    key = SigningKey(os.urandom(32))  # any ed25519 key signs at the same cost
    n = committee.n
    sizes: dict[str, list[int]] = {"cert": [], "proof": [], "leaves": [], "total": []}
    cpu: dict[str, list[float]] = {"header": [], "vote": [], "serve": [], "verify": []}
    votes, txs, rebuilt = [], [], 0
    for served in heights:
        cert = served[0].batch.certificate
        header = cert.header
        ordered = sorted(served, key=lambda s: s.namespace.encode())
        leaves = [leaf for s in ordered for leaf in s.batch.leaves]
        opened = DecryptedBatch(
            header.height,
            header.block_hash,
            tuple(DecryptedTx(leaf.namespace, leaf.digest, leaf.plaintext) for leaf in leaves),
            (),
        )
        parent = header.parent_batch_hash
        rebuilt += header_of(chain, opened, parent) == header
        cpu["header"].append(per_call_s(partial(_header_and_sign, key, chain, opened, parent)))
        vote = Signed(header, *cert.signatures[0])
        votes.append(len(frame(SHARES.encode(BatchVote(vote)))))
        cpu["vote"].append(per_call_s(partial(vote.verify, committee)))
        txs.append(header.leaf_count)
        for s in served:
            sizes["cert"].append(len(codec.encode(s.batch.certificate)))
            sizes["proof"].append(len(codec.encode(s.batch.proof)))
            sizes["leaves"].append(sum(len(codec.encode(leaf)) for leaf in s.batch.leaves))
            sizes["total"].append(len(s.data))
            cpu["serve"].append(per_call_s(partial(_serve, cert, leaves, s.namespace)))
            verify = partial(check_batch, committee, s.namespace, s.data, s.height, None)
            cpu["verify"].append(per_call_s(verify))
    mean = statistics.fmean
    nan = float("nan")
    return {
        "heights": len(heights),
        "txs_per_height": mean(txs) if txs else nan,
        "headers_rebuilt": rebuilt,
        "cert_bytes": mean(sizes["cert"]) if heights else nan,
        "proof_bytes": mean(sizes["proof"]) if heights else nan,
        "leaves_bytes": mean(sizes["leaves"]) if heights else nan,
        "batch_bytes": mean(sizes["total"]) if heights else nan,
        "vote_frame_bytes": mean(votes) if votes else nan,
        "votes_bytes_per_validator": (n - 1) * mean(votes) if votes else nan,
        "header_sign_us": 1e6 * statistics.median(cpu["header"]) if heights else nan,
        "vote_verify_us": 1e6 * statistics.median(cpu["vote"]) if heights else nan,
        "serve_us": 1e6 * statistics.median(cpu["serve"]) if heights else nan,
        "verify_us": 1e6 * statistics.median(cpu["verify"]) if heights else nan,
    }


def _decrypted(member: network.Member) -> int:
    status = health.node_status(member)
    return 0 if status is None else int(status["decrypted_height"])


def _certified(member: network.Member) -> int:
    status = health.node_status(member)
    return 0 if status is None else int(status.get("certified_height", 0))


@dataclass(frozen=True, slots=True)
class BenchConfig:
    nodes: int = 4
    rates: tuple[int, ...] = (25, 50, 100, 200)
    seconds: float = 10.0
    backlog: int = 3000
    base_port: int = 27100  # below the ephemeral port range
    carrier: str = "websocket"  # how the rollup follower gets its batches
    tx_bytes: int = 256  # each transaction's plaintext
    baseline: bool = True  # also measure the centralized sequencer (ops.centralized)


RATE_HEADER = (
    "| offered tx/s | decrypted | lost | client p50 ms | client p99 ms | node 0 p50 ms "
    "| node 0 p99 ms | rollup p50 ms | rollup p99 ms | rollup verified | subscriber CPU % |"
)
COST_HEADER = (
    "| load | heights/s | txs/height | certificate B | proof B | leaves B | namespace batch B "
    "| vote frame B | votes B/height/validator | header+sign us | vote check us "
    "| prove+encode us | client verify us |"
)


def _rss_header(indices: Sequence[int]) -> str:
    nodes = "".join(f" node {i} MiB |" for i in indices)
    return f"| phase |{nodes} max MiB | peak MiB during |"


def _rss_row(row: dict[str, Any]) -> str:
    nodes = "".join(f" {v:.0f} |" for v in row["nodes_mib"])
    return f"| {row['phase']} |{nodes} {row['max_mib']:.0f} | {row['peak_mib']:.0f} |"


def _separator(header: str) -> str:
    return "|---" * (header.count("|") - 1) + "|"


def _rate_row(r: dict[str, float]) -> str:
    return (
        f"| {r['offered']:.0f} | {r['decrypted']:.0f} | {r['lost']:.0f} | {r['p50_ms']:.0f} "
        f"| {r['p99_ms']:.0f} | {r['node_p50_ms']:.0f} | {r['node_p99_ms']:.0f} "
        f"| {r['rollup_p50_ms']:.0f} | {r['rollup_p99_ms']:.0f} | {r['rollup_verified']:.0f} "
        f"| {r['subscriber_cpu_pct']:.0f} |"
    )


def _cost_row(label: str, heights_per_s: float, c: dict[str, float]) -> str:
    return (
        f"| {label} | {heights_per_s:.1f} | {c['txs_per_height']:.1f} | {c['cert_bytes']:.0f} "
        f"| {c['proof_bytes']:.0f} | {c['leaves_bytes']:.0f} | {c['batch_bytes']:.0f} "
        f"| {c['vote_frame_bytes']:.0f} | {c['votes_bytes_per_validator']:.0f} "
        f"| {c['header_sign_us']:.0f} | {c['vote_verify_us']:.0f} | {c['serve_us']:.0f} "
        f"| {c['verify_us']:.0f} |"
    )


Samples = list[tuple[str, float, list[list[Served]]]]  # (load, heights/s, batches per height)


def run(config: BenchConfig) -> dict[str, Any]:
    """Start a cluster in a temp dir, measure, print Markdown tables, stop it; the results."""
    per_tx = crypto_cost_per_tx_s(config.nodes, payload_bytes=config.tx_bytes)
    cores = os.cpu_count() or 1
    ceiling = cores / (config.nodes * per_tx)
    result: dict[str, Any] = {
        "nodes": config.nodes,
        "tx_bytes": config.tx_bytes,
        "cores": cores,
        "crypto_us_per_tx": per_tx * 1e6,
        "ceiling_tps": ceiling,
        "rates": [],
    }
    print(
        f"baseline: {per_tx * 1e6:.0f} us crypto per tx per node on one core; "
        f"crypto-only ceiling for n={config.nodes} on {cores} cores: {ceiling:.0f} tx/s",
        flush=True,
    )
    directory = Path(tempfile.mkdtemp(prefix="seqnet-bench-"))
    network.write_network(directory, config.nodes, base_port=config.base_port)
    procs = processes.start(directory, "warning")
    follower: RollupFollower | None = None
    genesis: Genesis | None = None
    samples: Samples = []
    backlog: list[Tx] = []
    memory = RssSampler([proc.pid for proc in procs])  # in the order of network.members
    result["rss"] = []
    try:
        health.wait_until_committing(directory, procs, 60)
        members = network.members(directory)
        genesis = load_genesis(directory / "genesis.json")
        follower = RollupFollower(
            directory / "genesis.json",
            genesis.namespaces,
            _certified(members[-1]) + 1,
            _rollup_nodes(members),
            config.carrier,
        )
        sizes = [int(r * config.seconds) + 10 for r in config.rates]
        total = sum(sizes) + config.backlog
        print(f"encrypting {total} transactions of {config.tx_bytes} B ...", flush=True)
        pool = make_txs(genesis, total, genesis.namespaces, payload_bytes=config.tx_bytes)
        if not follower.wait_following(genesis.namespaces, FOLLOW_TIMEOUT_S):
            print(f"warning: the rollup follower read nothing within {FOLLOW_TIMEOUT_S:g} s")
        result["rss"].append(memory.mark("start"))
        source = (
            f"{len(genesis.namespaces)} gossip topics from every validator"
            if config.carrier == "gossip"
            else f"node {members[-1].index}'s {len(genesis.namespaces)} namespace streams"
        )
        print(
            f"load submitted to {len(_submitters(members))} node(s); "
            f"the rollup follower reads {source}"
        )
        print(RATE_HEADER)
        print(_separator(RATE_HEADER))
        groups: list[tuple[str, float, list[Tx]]] = []
        for rate, size in zip(config.rates, sizes, strict=True):
            txs, pool = pool[:size], pool[size:]
            r = steady(members, txs, rate, config.seconds, follower)
            result["rss"].append(memory.mark(f"{rate} tx/s"))
            result["rates"].append(r)
            groups.append((f"{rate} tx/s", r["heights_per_s"], txs))
            print(_rate_row(r), flush=True)
        backlog = pool[: config.backlog]
        s = saturation(members, backlog, follower)
        result["rss"].append(memory.mark("backlog"))
        result["saturation"] = s
        groups.append(("backlog", s["heights_per_s"], backlog))
        tps = s["decrypted"] / s["seconds"]
        print(f"saturation: {s['decrypted']}/{s['backlog']} decrypted in {s['seconds']:.1f} s "
              f"(submitted in {s['submit_s']:.1f} s): {tps:.0f} tx/s = "
              f"{tps / ceiling:.2f} x the crypto-only ceiling; verified at the rollup: "
              f"{s['rollup_verified']}/{s['backlog']} in {s['rollup_seconds']:.1f} s")  # fmt: skip
        print_rss([m.index for m in members], result["rss"])
        for label, per_s, txs in groups:
            heights = sample_heights(follower, txs)
            samples.append((label, per_s, fetch_served(members[-1], genesis, heights)))
    finally:
        memory.stop()
        if follower is not None:
            result["follower_exit"] = follower.stop()
        codes = processes.stop_procs(procs)
        print(f"nodes stopped (exit codes {codes}); logs in {directory}", flush=True)
    if backlog:
        result["load_client_alone"] = print_load_client_alone(backlog, result["saturation"])
    if genesis is not None and samples:
        result["costs"] = print_costs(genesis, samples)
    if config.baseline and genesis is not None and "saturation" in result:
        result["centralized"] = centralized(config, genesis.namespaces, directory)
        result["centralized"]["ratios"] = print_ratios(result)
    return result


def print_rss(indices: Sequence[int], rows: list[dict[str, Any]]) -> None:
    """The memory table: each node's RSS at the end of each phase, and the peak during it."""
    print(
        f"\nnode memory (VmRSS, sampled every {RSS_SAMPLE_S:g} s; at the end of each phase: "
        "start = committing before any load, a rate once drained, the backlog once verified):"
    )
    header = _rss_header(indices)
    print(header)
    print(_separator(header))
    for row in rows:
        print(_rss_row(row))
    print(flush=True)


def print_load_client_alone(txs: list[Tx], sat: dict[str, float]) -> dict[str, float]:
    """The load client against a null sink (nodes stopped), told against the saturation."""
    alone = load_client_alone(txs)
    cluster_tps = sat["decrypted"] / sat["seconds"] if sat["seconds"] > 0 else float("nan")
    in_run = sat["backlog"] / sat["submit_s"] if sat["submit_s"] > 0 else float("nan")
    alone["times_saturation"] = alone["tps"] / cluster_tps if cluster_tps > 0 else float("nan")
    alone["in_run_submit_tps"] = in_run
    print(
        f"load client alone against a null sink: {alone['tps']:.0f} tx/s "
        f"({alone['times_saturation']:.1f}x the saturation of {cluster_tps:.0f} tx/s; "
        f"{alone['submitted']:.0f} tx in {alone['seconds']:.1f} s, batches of {SUBMIT_BATCH}; "
        f"client CPU {alone['client_cpu_pct']:.0f} %, sink CPU {alone['sink_cpu_pct']:.0f} % "
        "of one core); "
        f"in the run it submitted the backlog at {in_run:.0f} tx/s",
        flush=True,
    )
    return alone


def print_costs(genesis: Genesis, samples: Samples) -> list[dict[str, Any]]:
    """The cost table, timed once the nodes are stopped (less noise from them); its rows."""
    print(
        f"\ncertificates and proofs per batch ({len(genesis.namespaces)} namespaces; up to "
        f"{SAMPLE_HEIGHTS} heights per load, served as CBOR; bytes per namespace batch; "
        "CPU on one core, best of 3):"
    )
    print(COST_HEADER)
    print(_separator(COST_HEADER))
    rows = []
    for label, per_s, heights in samples:
        costs = batch_costs(genesis, heights)
        rows.append({"load": label, "heights_per_s": per_s, **costs})
        print(_cost_row(label, per_s, costs), flush=True)
        if costs["headers_rebuilt"] != costs["heights"]:
            print(f"warning: {label}: a rebuilt header differs from the certified one")
    return rows


# ------------------------------------------------------------ the centralized baseline

CENTRALIZED_BLOCK_MS = 50  # the baseline's batch interval
CENTRALIZED_CONNECTIONS = 32  # its backlog is sent over this many connections at once
CENTRALIZED_IN_FLIGHT = 4  # steady rates: requests that may wait for their answer at once
CENTRALIZED_HEADER = (
    "| centralized: offered tx/s | delivered | lost | p50 ms | p99 ms | sequencer CPU % "
    "| subscriber CPU % | heights/s |"
)


def _wait_delivered(sub: Subscriber, digests: Iterable[bytes], timeout_s: float) -> None:
    """Until every one of ``digests`` reached the subscriber (or it died, or the time is up)."""
    wanted, deadline = set(digests), time.monotonic() + timeout_s
    while not wanted <= sub.seen.keys() and sub.alive and time.monotonic() < deadline:
        time.sleep(0.02)


def _share(cpu_before: float, cpu_after: float, seconds: float) -> float:
    """CPU seconds over wall seconds, in % of one core."""
    return 100 * (cpu_after - cpu_before) / seconds if seconds > 0 else float("nan")


def centralized_steady(
    seq: CentralizedProcess, sub: Subscriber, txs: list[Tx], rate: int, seconds: float
) -> dict[str, float]:
    """The steady phase against the centralized sequencer: submit -> delivered to ``sub``."""
    cpu, sub_cpu, heights = seq.cpu_seconds(), sub.cpu_seconds(), sub.height
    start = time.monotonic()
    sent_at, submitted_for = offer([seq.address], txs, rate, seconds, CENTRALIZED_IN_FLIGHT)
    _wait_delivered(sub, sent_at, 60)
    took = time.monotonic() - start
    seen = sub.seen
    delivered = sorted(seen[d][0] - t for d, t in sent_at.items() if d in seen)
    return {
        "rate": rate,
        "offered": len(sent_at) / submitted_for,
        "delivered": len(delivered),
        "lost": len(sent_at) - len(delivered),
        "p50_ms": _ms(delivered, 0.5),
        "p99_ms": _ms(delivered, 0.99),
        "sequencer_cpu_pct": _share(cpu, seq.cpu_seconds(), took),
        "subscriber_cpu_pct": _share(sub_cpu, sub.cpu_seconds(), took),
        "heights_per_s": (sub.height - heights) / took,
    }


def centralized_saturation(
    seq: CentralizedProcess, sub: Subscriber, txs: list[Tx]
) -> dict[str, float]:
    """The backlog in requests of ``SUBMIT_BATCH`` over ``CENTRALIZED_CONNECTIONS`` at once.

    Not one connection as for the cluster: the sequencer answers a request once
    its batch is stored, so one connection would get one request into each batch
    (``SUBMIT_BATCH`` per ``CENTRALIZED_BLOCK_MS``), a bound of the client's.
    """
    chunks = [txs[k : k + SUBMIT_BATCH] for k in range(0, len(txs), SUBMIT_BATCH)]
    cpu, heights = seq.cpu_seconds(), sub.height
    start = time.monotonic()
    with ThreadPoolExecutor(CENTRALIZED_CONNECTIONS) as pool:
        answers = list(pool.map(partial(submit_batch, seq.address), chunks))
    submitted = time.monotonic() - start
    statuses = [status for answer in answers for status in answer]
    accepted = {tx.digest for tx, st in zip(txs, statuses, strict=True) if st == "pending"}
    _wait_delivered(sub, accepted, 300)
    took = time.monotonic() - start
    done = accepted & sub.seen.keys()
    seconds = max((sub.seen[d][0] for d in done), default=start) - start
    return {
        "backlog": len(txs),
        "accepted": len(accepted),
        "delivered": len(done),
        "seconds": seconds,
        "submit_s": submitted,
        "tps": len(done) / seconds if seconds > 0 else float("nan"),
        "sequencer_cpu_pct": _share(cpu, seq.cpu_seconds(), took),
        "heights_per_s": (sub.height - heights) / took,
    }


def _centralized_row(r: dict[str, float]) -> str:
    return (
        f"| {r['offered']:.0f} | {r['delivered']:.0f} | {r['lost']:.0f} | {r['p50_ms']:.0f} "
        f"| {r['p99_ms']:.0f} | {r['sequencer_cpu_pct']:.0f} | {r['subscriber_cpu_pct']:.0f} "
        f"| {r['heights_per_s']:.1f} |"
    )


def centralized(config: BenchConfig, namespaces: Sequence[str], directory: Path) -> dict[str, Any]:
    """The same rates, seconds and backlog against ``ops.centralized`` (the cluster stopped)."""
    sizes = [int(r * config.seconds) + 10 for r in config.rates]
    pool = make_plain_txs(sum(sizes) + config.backlog, namespaces, config.tx_bytes)
    print(
        f"\ncentralized baseline (ops.centralized: one process, no consensus, no encryption; "
        f"batches every {CENTRALIZED_BLOCK_MS} ms stored with fsync before the submission is "
        f"answered; plaintext transactions of {config.tx_bytes} B; a subscriber process reads "
        f"its {len(namespaces)} namespace streams over WebSocket):",
        flush=True,
    )
    result: dict[str, Any] = {"block_ms": CENTRALIZED_BLOCK_MS, "rates": []}
    database = directory / "centralized.sqlite"
    with CentralizedProcess(database, namespaces, CENTRALIZED_BLOCK_MS) as seq:
        sub = Subscriber(seq.address, namespaces)
        try:
            if not sub.wait_ready(namespaces, FOLLOW_TIMEOUT_S):
                raise ClientError(f"the centralized baseline's subscriber failed: {sub.error}")
            print(CENTRALIZED_HEADER)
            print(_separator(CENTRALIZED_HEADER))
            for rate, size in zip(config.rates, sizes, strict=True):
                txs, pool = pool[:size], pool[size:]
                r = centralized_steady(seq, sub, txs, rate, config.seconds)
                result["rates"].append(r)
                print(_centralized_row(r), flush=True)
            result["saturation"] = s = centralized_saturation(seq, sub, pool[: config.backlog])
        finally:
            result["subscriber_exit"] = sub.stop()
    result["exit"] = seq.proc.returncode
    print(f"centralized saturation: {s['delivered']}/{s['backlog']} delivered in "
          f"{s['seconds']:.2f} s: {s['tps']:.0f} tx/s (submitted over {CENTRALIZED_CONNECTIONS} "
          f"connections in {s['submit_s']:.2f} s; sequencer CPU {s['sequencer_cpu_pct']:.0f} % "
          f"of one core); sequencer exit code {result['exit']}", flush=True)  # fmt: skip
    return result


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 and not math.isnan(a) else float("nan")


def print_ratios(result: dict[str, Any]) -> dict[str, Any]:
    """seqnet against the centralized baseline: saturation, and rollup p50 at each rate."""
    sat, base = result["saturation"], result["centralized"]
    decrypted = _ratio(sat["decrypted"], sat["seconds"])
    at_rollup = _ratio(sat["rollup_verified"], sat["rollup_seconds"])
    central = base["saturation"]["tps"]
    p50 = [
        {
            "rate": r["rate"],
            "seqnet_rollup_p50_ms": r["rollup_p50_ms"],
            "centralized_p50_ms": c["p50_ms"],
            "ratio": _ratio(r["rollup_p50_ms"], c["p50_ms"]),
        }
        for r, c in zip(result["rates"], base["rates"], strict=True)
    ]
    each = ", ".join(
        f"at {x['rate']} tx/s {x['ratio']:.1f}x ({x['seqnet_rollup_p50_ms']:.0f} / "
        f"{x['centralized_p50_ms']:.0f} ms)"
        for x in p50
    )
    print(
        f"seqnet / centralized: saturation {_ratio(decrypted, central):.3f} ({decrypted:.0f} / "
        f"{central:.0f} tx/s; to the rollup {_ratio(at_rollup, central):.3f}); "
        f"rollup p50 {each}",
        flush=True,
    )
    return {
        "saturation": _ratio(decrypted, central),
        "saturation_at_rollup": _ratio(at_rollup, central),
        "rollup_p50": p50,
    }
