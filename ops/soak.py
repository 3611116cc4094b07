"""A long steady load on a local cluster: does each node's memory stay flat, is nothing lost?

    seqnet soak [--nodes N] [--rate R] [--minutes M] [--tx-bytes B] [--sample-s S]
                [--base-port P] [--generators G] [--json]

A benchmark's few seconds per rate cannot show a slow leak; a soak runs long
enough for one to dominate. Starts N ``seqnet node`` processes on 127.0.0.1
(fresh keys in a temp dir), waits until they commit, then offers ``rate``
transactions per second for ``minutes``, open loop (every 50 ms whatever is due
so far, round-robin over all the nodes, as ``ops.bench.steady`` does).

Over a million transactions cannot be encrypted beforehand, so ``generators``
child processes (``python -m ops.soak generate ...``, each with its own GIL)
encrypt them on the fly and stream them to this process, which keeps a bounded
queue of a few seconds ahead of the submitter: the child blocks on its pipe
when the queue is full. The submitter never waits for them; when none are
ready it notes the shortfall, so the report says whether the generator kept up
(the offered rate actually achieved).

Every ``sample_s`` seconds, each node's VmRSS, committed height and count of
decrypted transactions (``seqnet_transactions_decrypted_total`` from its
``/metrics``, every namespace) are recorded and printed as a row of a Markdown
table. Node 0's decrypted batches are followed height by height
(``/v1/batches/{h}``), every digest: each acknowledged transaction ("pending")
is struck off when it appears, so only those in flight are held. After the
load, a drain wait; then ``lost`` = acknowledged transactions node 0 never
decrypted (exact, by digest), and every node's decrypted count per namespace
is compared with what was acknowledged (exact too: nothing else is submitted).

The verdict per node: RSS at the start of the second half (the first half is
warm-up: caches, SQLite pages, allocator arenas) and at the end, the growth in
MiB and %, and the least-squares slope over the second half in MiB per 10
minutes.
"""

from __future__ import annotations

import http.client
import math
import os
import queue
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ops import health, processes
from ops.bench import rss_mib
from ops.load import Tx, cpu_seconds_of, submit_batch
from sequencer_net.client.encrypt import seal
from sequencer_net.client.http import ClientError, get_json
from sequencer_net.node import network
from sequencer_net.node.genesis import load_genesis

TICK_S = 0.05  # the submitter sends what is due every tick (as ops.bench)
MAX_REQUEST = 1000  # transactions per request at most (a generator catching up sends bursts)
CHUNK = 50  # transactions per chunk handed from a generator's reader to the submitter
AHEAD_S = 5.0  # the queue holds this many seconds of transactions at the offered rate
PRIME_TIMEOUT_S = 60.0  # the queue must fill before the load starts
POLL_S = 0.1  # node 0's decrypted batches are read this often
DRAIN_S = 60.0  # after the load, wait at most this long for the last ones to decrypt
FLAT_PCT_PER_10MIN = 1.0  # a second-half slope under this share of the RSS is called flat
LOST_SHOWN = 10  # lost transactions whose status is looked up and printed
FRAME = struct.Struct(">B32sI")  # namespace index, digest, ciphertext length
DECRYPTED = "seqnet_transactions_decrypted_total"
# a node dying mid-answer: the client library wraps OSError, not http.client's IncompleteRead
UNANSWERED = (ClientError, http.client.HTTPException, OSError)


@dataclass(frozen=True, slots=True)
class SoakConfig:
    nodes: int = 4
    rate: int = 800
    minutes: float = 30.0
    tx_bytes: int = 256
    sample_s: float = 10.0
    base_port: int = 28000
    generators: int = 1
    keep_data: bool = False  # keep the node databases (GiBs after 30 minutes)

    @property
    def seconds(self) -> float:
        return 60.0 * self.minutes


# ------------------------------------------------------------ generating on the fly


def _generate(genesis_path: Path, tx_bytes: int, worker: int) -> None:
    """(child) Encrypt transactions forever, framed on stdout, until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us; no traceback on Ctrl-C
    genesis = load_genesis(genesis_path)
    spaces = genesis.namespaces
    k = 0
    try:
        while True:
            frames = []
            for _ in range(CHUNK):
                index = k % len(spaces)
                payload = f"soak-{worker}-{k}".encode()[:tx_bytes].ljust(tx_bytes, b".")
                sealed = seal(genesis, spaces[index], payload)
                frames.append(FRAME.pack(index, sealed.digest, len(sealed.data)) + sealed.data)
                k += 1
            _write_all(1, b"".join(frames))
    except (BrokenPipeError, OSError):
        pass
    os._exit(0)  # no interpreter teardown flushing into a closed pipe


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _generate_command(genesis_path: Path, tx_bytes: int, worker: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "ops.soak",
        "generate",
        str(genesis_path),
        str(tx_bytes),
        str(worker),
    ]


class Generators:
    """Child processes encrypting ahead of the submitter, into a bounded queue of chunks."""

    def __init__(self, genesis_path: Path, namespaces: Sequence[str], config: SoakConfig) -> None:
        ahead = max(2, math.ceil(config.rate * AHEAD_S / CHUNK))
        self.chunks: queue.Queue[list[Tx]] = queue.Queue(maxsize=ahead)
        self._spaces = list(namespaces)
        self._ready: list[Tx] = []
        self._stopping = threading.Event()
        self.procs = [
            subprocess.Popen(
                _generate_command(genesis_path, config.tx_bytes, w),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
            )
            for w in range(config.generators)
        ]
        self._readers = [
            threading.Thread(target=self._read, args=(p,), daemon=True) for p in self.procs
        ]
        for reader in self._readers:
            reader.start()

    def _read(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        chunk: list[Tx] = []
        try:
            while len(head := proc.stdout.read(FRAME.size)) == FRAME.size:
                index, digest, size = FRAME.unpack(head)
                chunk.append(Tx(proc.stdout.read(size), digest, self._spaces[index], b""))
                if len(chunk) == CHUNK:
                    self._put(chunk)
                    chunk = []
        except (OSError, ValueError):
            pass  # the pipe was closed by stop()

    def _put(self, chunk: list[Tx]) -> None:
        """Blocks while far enough ahead (the child then blocks on its pipe), until stop()."""
        while not self._stopping.is_set():
            try:
                self.chunks.put(chunk, timeout=0.2)
                return
            except queue.Full:
                continue

    def prime(self, timeout_s: float = PRIME_TIMEOUT_S) -> bool:
        """Wait until the queue is full (the load must not start starved); whether it is."""
        deadline = time.monotonic() + timeout_s
        while not self.chunks.full():
            if time.monotonic() > deadline or all(p.poll() is not None for p in self.procs):
                return False
            time.sleep(0.05)
        return True

    def take(self, count: int) -> list[Tx]:
        """Up to ``count`` encrypted transactions, only those ready now (never waits)."""
        while len(self._ready) < count:
            try:
                self._ready.extend(self.chunks.get_nowait())
            except queue.Empty:
                break
        taken, self._ready = self._ready[:count], self._ready[count:]
        return taken

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds_of(p.pid) for p in self.procs)

    def stop(self) -> None:
        """Terminate the children (nothing of theirs needs saving) and reap them."""
        self._stopping.set()
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        for proc in self.procs:
            if proc.stdout is not None:
                proc.stdout.close()


# ------------------------------------------------------------ following what is decrypted


class Tracker:
    """Strikes each acknowledged digest off when node 0's decrypted batches show it.

    Only what is in flight is held (``outstanding``); a digest seen before its
    acknowledgement is noted (``early``) until it comes. Invalid ones (no
    plaintext) are counted apart: the generator only makes valid ones.
    """

    def __init__(self, api: str, from_height: int) -> None:
        self.api = api
        self.next_height = from_height
        self.outstanding: set[bytes] = set()
        self.early: set[bytes] = set()
        self.acked = 0
        self.decrypted = 0
        self.invalid = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def ack(self, digests: Sequence[bytes]) -> None:
        with self._lock:
            self.acked += len(digests)
            for digest in digests:
                if digest in self.early:
                    self.early.discard(digest)
                else:
                    self.outstanding.add(digest)

    def seen(self, digests: Sequence[bytes], invalid: int = 0) -> None:
        with self._lock:
            self.decrypted += len(digests) - invalid
            self.invalid += invalid
            for digest in digests:
                if digest in self.outstanding:
                    self.outstanding.discard(digest)
                else:
                    self.early.add(digest)

    def in_flight(self) -> int:
        with self._lock:
            return len(self.outstanding)

    def _run(self) -> None:
        while not self._stop.wait(POLL_S):
            self.poll()

    def poll(self) -> None:
        """Read every batch decrypted since the last call."""
        while True:
            try:
                batch = get_json(self.api, f"/v1/batches/{self.next_height}", timeout=10)
            except UNANSWERED:
                return  # not decrypted yet (404), or the node is busy or down: next time
            txs = batch["transactions"]
            invalid = sum(tx["plaintext"] is None for tx in txs)
            self.seen([bytes.fromhex(tx["digest"]) for tx in txs], invalid)
            self.next_height += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)


# ------------------------------------------------------------ sampling the nodes


def decrypted_by_namespace(member: network.Member) -> dict[str, float] | None:
    """The node's decrypted transactions per namespace from ``/metrics``; None if unread."""
    try:
        samples = health.metric_samples(member, DECRYPTED)
    except (OSError, http.client.HTTPException):
        return None
    return {sample.labels["namespace"]: sample.value for sample in samples}


def _height(member: network.Member) -> int | None:
    try:
        status = health.node_status(member)
    except http.client.HTTPException:  # the node died mid-answer
        return None
    return None if not status else int(status["height"])


@dataclass
class Offered:
    """What the submitter did so far (written by it, read by the sampler)."""

    sent: int = 0
    acked: int = 0
    acked_by_ns: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    failed_requests: int = 0
    starved_ticks: int = 0
    max_behind: int = 0  # transactions due but not yet encrypted, at worst
    seconds: float = 0.0


class Sampler:
    """Every node's RSS, height and decrypted count every ``sample_s``, from a thread.

    Each sample is printed as a table row at once, so a long run shows its progress.
    """

    def __init__(
        self,
        members: list[network.Member],
        pids: list[int],
        offered: Offered,
        sample_s: float,
        baseline: list[float],
    ) -> None:
        self.members, self.pids, self.offered = members, pids, offered
        self.sample_s, self.baseline = sample_s, baseline
        self.samples: list[dict[str, Any]] = []
        self.start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def begin(self, start: float) -> None:
        self.start = start
        print(table_header(len(self.members)), flush=True)
        print(_separator(table_header(len(self.members))), flush=True)
        self.sample()
        self._thread.start()

    def _run(self) -> None:
        k = 1
        while not self._stop.wait(max(0.0, self.start + k * self.sample_s - time.monotonic())):
            self.sample()
            k += 1

    def sample(self) -> dict[str, Any]:
        """Record (and print) one sample now."""
        t = time.monotonic() - self.start
        counts = [decrypted_by_namespace(m) for m in self.members]
        sent = self.offered.sent
        row: dict[str, Any] = {
            "t": t,
            "rss_mib": [rss_mib(pid) for pid in self.pids],
            "height": [_height(m) for m in self.members],
            "decrypted": [
                None if c is None else sum(c.values()) - b
                for c, b in zip(counts, self.baseline, strict=True)
            ],
            "sent": sent,
            "acked": self.offered.acked,
        }
        previous = self.samples[-1] if self.samples else None
        row["offered_tps"] = (
            (sent - previous["sent"]) / (t - previous["t"])
            if previous is not None and t > previous["t"]
            else 0.0
        )
        self.samples.append(row)
        print(table_row(row), flush=True)
        return row

    def stop(self) -> None:
        """Stop sampling, and take a last sample now unless one was just taken."""
        self._stop.set()
        self._thread.join()
        if time.monotonic() - self.start - self.samples[-1]["t"] > 0.5:
            self.sample()


def table_header(n: int) -> str:
    rss = "".join(f" node {i} MiB |" for i in range(n))
    heights = "".join(f" node {i} height |" for i in range(n))
    decrypted = "".join(f" node {i} decrypted |" for i in range(n))
    return f"| t s |{rss}{heights}{decrypted} offered tx/s |"


def _cell(value: float | None, digits: int = 0) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def table_row(row: dict[str, Any]) -> str:
    cells = [_cell(row["t"])]
    cells += [_cell(v, 1) for v in row["rss_mib"]]
    cells += [_cell(v) for v in row["height"]]
    cells += [_cell(v) for v in row["decrypted"]]
    cells.append(_cell(row["offered_tps"]))
    return "| " + " | ".join(cells) + " |"


def _separator(header: str) -> str:
    return "|---" * (header.count("|") - 1) + "|"


# ------------------------------------------------------------ offering the load


def offer(
    members: list[network.Member],
    feed: Generators,
    tracker: Tracker,
    offered: Offered,
    rate: int,
    seconds: float,
    start: float,
) -> None:
    """Open loop: every tick, what is due at ``rate`` so far, to the next node in turn."""
    sends = 0
    while (elapsed := time.monotonic() - start) < seconds:
        tick = int(elapsed / TICK_S) + 1
        due = round(rate * TICK_S * tick) - offered.sent
        batch = feed.take(min(due, MAX_REQUEST))
        if len(batch) < due:
            offered.starved_ticks += len(batch) < min(due, MAX_REQUEST)
            offered.max_behind = max(offered.max_behind, due - len(batch))
        if batch:
            _submit(members[sends % len(members)], batch, tracker, offered)
            sends += 1
        time.sleep(max(0.0, start + tick * TICK_S - time.monotonic()))
    offered.seconds = time.monotonic() - start


def _submit(member: network.Member, batch: list[Tx], tracker: Tracker, offered: Offered) -> None:
    offered.sent += len(batch)
    try:
        statuses = submit_batch(member.api, batch)
    except UNANSWERED:
        offered.failed_requests += 1  # their fate is unknown: not counted as acknowledged
        return
    accepted = [tx for tx, status in zip(batch, statuses, strict=True) if status == "pending"]
    tracker.ack([tx.digest for tx in accepted])
    offered.acked += len(accepted)
    offered.acked_by_ns.update(tx.namespace for tx in accepted)
    offered.refused.update(status for status in statuses if status != "pending")


# ------------------------------------------------------------ the verdict


def slope_per_s(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y); NaN with fewer than two distinct times."""
    good = [(t, y) for t, y in points if not math.isnan(y)]
    if len(good) < 2:
        return float("nan")
    mean_t = sum(t for t, _ in good) / len(good)
    mean_y = sum(y for _, y in good) / len(good)
    spread = sum((t - mean_t) ** 2 for t, _ in good)
    if spread == 0:
        return float("nan")
    return sum((t - mean_t) * (y - mean_y) for t, y in good) / spread


def memory_verdict(samples: list[dict[str, Any]], seconds: float) -> list[dict[str, Any]]:
    """Per node: RSS at the start of the second half and at the end, growth, slope."""
    half = [s for s in samples if s["t"] >= seconds / 2 - 1e-6] or samples[-1:]
    first, last = half[0], samples[-1]
    out = []
    for i in range(len(samples[0]["rss_mib"])):
        begin, end = first["rss_mib"][i], last["rss_mib"][i]
        slope = slope_per_s([(s["t"], s["rss_mib"][i]) for s in half])
        growth = end - begin
        out.append({
            "node": i,
            "start_mib": samples[0]["rss_mib"][i],
            "half_t": first["t"],
            "half_mib": begin,
            "end_t": last["t"],
            "end_mib": end,
            "growth_mib": growth,
            "growth_pct": 100 * growth / begin if begin > 0 else float("nan"),
            "slope_mib_per_10min": 600 * slope,
            "peak_mib": max(s["rss_mib"][i] for s in samples),
            "flat": abs(600 * slope) < FLAT_PCT_PER_10MIN / 100 * end,
        })  # fmt: skip
    return out


def node_shortfall(acked_by_ns: Counter[str], decrypted: dict[str, float] | None) -> int | None:
    """Acknowledged transactions a node has not (yet) decrypted, per namespace; None: unread."""
    if decrypted is None:
        return None
    return sum(max(0, count - int(decrypted.get(ns, 0))) for ns, count in acked_by_ns.items())


def drain(
    members: list[network.Member],
    tracker: Tracker,
    acked_by_ns: Counter[str],
    baselines: list[dict[str, float]],
    timeout_s: float = DRAIN_S,
) -> list[int | None]:
    """Wait until node 0 showed every acknowledged digest and every node's counts cover them."""
    deadline = time.monotonic() + timeout_s
    while True:
        short = [_short(m, acked_by_ns, b) for m, b in zip(members, baselines, strict=True)]
        if (tracker.in_flight() == 0 and all(s == 0 for s in short)) or (
            time.monotonic() > deadline
        ):
            return short
        time.sleep(0.25)


def _short(member: network.Member, acked: Counter[str], baseline: dict[str, float]) -> int | None:
    counts = decrypted_by_namespace(member)
    if counts is None:
        return None
    return node_shortfall(acked, {ns: v - baseline.get(ns, 0.0) for ns, v in counts.items()})


def lost_statuses(member: network.Member, digests: Sequence[bytes]) -> list[str]:
    """Where a few lost transactions are, as node 0 tells (pending, committed, unknown)."""
    out = []
    for digest in list(digests)[:LOST_SHOWN]:
        try:
            status = get_json(member.api, f"/v1/transactions/{digest.hex()}")["status"]
        except UNANSWERED as exc:
            status = f"lookup failed: {exc!r}"
        out.append(f"{digest.hex()[:16]}: {status}")
    return out


# ------------------------------------------------------------ the run


def run(config: SoakConfig) -> dict[str, Any]:
    """Start a cluster, soak it, print the table and the verdict, stop it; the results."""
    directory = Path(tempfile.mkdtemp(prefix="seqnet-soak-"))
    network.write_network(directory, config.nodes, base_port=config.base_port)
    procs = processes.start(directory, "warning")
    result: dict[str, Any] = {"config": asdict(config), "directory": str(directory)}
    signalled = False
    try:
        health.wait_until_committing(directory, procs, 60)
        feed = Generators(directory / "genesis.json", _namespaces(directory), config)
        try:
            _soak(directory, procs, feed, config, result)
        finally:
            feed.stop()
    except KeyboardInterrupt:
        signalled = True  # Ctrl-C reached the nodes too (same process group): they are stopping
        print("interrupted: stopping the nodes; no verdict", file=sys.stderr, flush=True)
        raise
    finally:
        result["exit_codes"] = _stop_nodes(procs, signalled)
        (directory / processes.STATE_FILE).unlink(missing_ok=True)
        _tidy(directory, config.keep_data)
        print(f"nodes stopped (exit codes {result['exit_codes']}); logs in {directory}", flush=True)
    return result


def _stop_nodes(procs: list[subprocess.Popen[bytes]], signalled: bool) -> list[int]:
    try:
        return processes.stop_procs(procs, signalled=signalled)
    except KeyboardInterrupt:  # a second Ctrl-C: no more waiting
        return processes.stop_procs(procs, timeout_s=0)


def _namespaces(directory: Path) -> tuple[str, ...]:
    return load_genesis(directory / "genesis.json").namespaces


def _soak(
    directory: Path,
    procs: list[subprocess.Popen[bytes]],
    feed: Generators,
    config: SoakConfig,
    result: dict[str, Any],
) -> None:
    """Prime the generator, offer the load while sampling, drain, judge (into ``result``)."""
    members = network.members(directory)
    baselines = [decrypted_by_namespace(m) or {} for m in members]
    tracker = Tracker(members[0].api, _decrypted_height(members[0]) + 1)
    tracker.start()
    try:
        print(
            f"{config.nodes} nodes committing; encrypting ahead in {config.generators} child "
            f"process(es) ({AHEAD_S:g} s of load queued) ...",
            flush=True,
        )
        if not feed.prime():
            print("warning: the generator did not fill its queue in time; starting anyway")
        offered = Offered()
        pids = [p.pid for p in procs]
        totals = [sum(b.values()) for b in baselines]
        sampler = Sampler(members, pids, offered, config.sample_s, totals)
        print(
            f"offering {config.rate} tx/s of {config.tx_bytes} B for {config.minutes:g} min, "
            f"round-robin over {len(members)} nodes; a sample every {config.sample_s:g} s:",
            flush=True,
        )
        cpu_before = feed.cpu_seconds()
        start = time.monotonic()
        sampler.begin(start)
        try:
            offer(members, feed, tracker, offered, config.rate, config.seconds, start)
        finally:
            sampler.stop()
        generator_cpu = feed.cpu_seconds() - cpu_before
        exited = [m.index for m, p in zip(members, procs, strict=True) if p.poll() is not None]
        short = drain(members, tracker, offered.acked_by_ns, baselines)
    finally:
        tracker.stop()
    result["samples"] = sampler.samples
    v = verdict(config, sampler.samples, offered, tracker, short, exited)
    v["generator_cpu_pct"] = 100 * generator_cpu / max(offered.seconds, 1e-9)
    v["lost_examples"] = lost_statuses(members[0], sorted(tracker.outstanding))
    result["verdict"] = v
    print_verdict(v)


def _decrypted_height(member: network.Member) -> int:
    status = health.node_status(member)
    return 0 if not status else int(status["decrypted_height"])


def verdict(
    config: SoakConfig,
    samples: list[dict[str, Any]],
    offered: Offered,
    tracker: Tracker,
    short: list[int | None],
    exited: list[int],
) -> dict[str, Any]:
    """Memory per node, the offered rate against the target, and what was lost."""
    achieved = offered.sent / offered.seconds if offered.seconds > 0 else 0.0
    memory = memory_verdict(samples, offered.seconds)
    lost = len(tracker.outstanding)
    problems = []
    if lost:
        problems.append(f"{lost} acknowledged transaction(s) never decrypted at node 0")
    if tracker.invalid:
        problems.append(f"{tracker.invalid} transaction(s) decrypted as invalid")
    for i, missing in enumerate(short):
        if missing != 0:
            what = "metrics unreadable" if missing is None else f"{missing} short"
            problems.append(f"node {i}'s decrypted count is {what} of the acknowledged")
    if exited:
        problems.append(f"node(s) {exited} exited during the run")
    return {
        "target_tps": config.rate,
        "offered_tps": achieved,
        "offered_pct": 100 * achieved / config.rate,
        "generator_kept_up": offered.sent >= 0.99 * config.rate * offered.seconds,
        "starved_ticks": offered.starved_ticks,
        "max_behind_tx": offered.max_behind,
        "seconds": offered.seconds,
        "sent": offered.sent,
        "acked": offered.acked,
        "refused": dict(offered.refused),
        "failed_requests": offered.failed_requests,
        "decrypted_node0": tracker.decrypted,
        "decrypted_unacknowledged": len(tracker.early),
        "invalid": tracker.invalid,
        "lost": lost,
        "node_shortfall": short,
        "memory": memory,
        "problems": problems,
        "ok": not problems,
    }


def print_verdict(v: dict[str, Any]) -> None:
    print()
    m0 = v["memory"][0]
    print(
        f"memory, second half ({m0['half_t']:.0f} s to {m0['end_t']:.0f} s; "
        f"flat = slope under {FLAT_PCT_PER_10MIN:g} % of the RSS per 10 min):"
    )
    for m in v["memory"]:
        flat = "flat" if m["flat"] else "GROWING"
        print(
            f"  node {m['node']}: {m['half_mib']:.1f} -> {m['end_mib']:.1f} MiB, "
            f"{m['growth_mib']:+.1f} MiB ({m['growth_pct']:+.1f} %), slope "
            f"{m['slope_mib_per_10min']:+.2f} MiB/10 min, {flat} (start {m['start_mib']:.1f}, "
            f"peak {m['peak_mib']:.1f} MiB)"
        )
    kept = "kept up" if v["generator_kept_up"] else "did NOT keep up"
    print(
        f"offered: {v['sent']} tx in {v['seconds']:.1f} s = {v['offered_tps']:.1f} tx/s of "
        f"{v['target_tps']} target ({v['offered_pct']:.1f} %): the generator {kept} "
        f"(starved ticks {v['starved_ticks']}, at most {v['max_behind_tx']} tx behind, "
        f"generator CPU {v['generator_cpu_pct']:.0f} % of one core)"
    )
    refused = ", ".join(f"{k} {n}" for k, n in v["refused"].items()) or "none"
    print(
        f"acknowledged {v['acked']} (refused: {refused}; failed requests "
        f"{v['failed_requests']}); decrypted at node 0: {v['decrypted_node0']}, invalid "
        f"{v['invalid']}; node shortfall after the drain: {v['node_shortfall']}"
    )
    print(f"lost: {v['lost']} (acknowledged, never decrypted at node 0; every digest checked)")
    for line in v["lost_examples"]:
        print(f"  {line}")
    print("RESULT: ok" if v["ok"] else "RESULT: FAIL: " + "; ".join(v["problems"]), flush=True)


def _tidy(directory: Path, keep_data: bool) -> None:
    """Remove the node databases (GiBs after a long run) unless asked to keep them."""
    if keep_data:
        return
    for path in directory.glob("node-*.db*"):
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def main(argv: Sequence[str]) -> int:
    """``python -m ops.soak generate GENESIS TX_BYTES WORKER`` (the generator child)."""
    if len(argv) != 4 or argv[0] != "generate":
        print(main.__doc__, file=sys.stderr)
        return 2
    _generate(Path(argv[1]), int(argv[2]), int(argv[3]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
