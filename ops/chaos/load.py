"""The load a chaos run offers: steady, open loop, failing over from nodes that do not answer.

Transactions are encrypted ahead by ``seqnet soak``'s generator child
(``ops.soak.Generators``: its own process and GIL, a few seconds ahead) and
submitted with ``ops.load.submit_batch``: every 50 ms whatever is due at the
rate, to the next node in turn. A node that does not answer within
``SUBMIT_TIMEOUT_S`` (killed: refused at once; paused: silent) is tried last
for ``SUSPECT_S``, and the same batch goes to the next node, as a client with
several endpoints would do. Each transaction is recorded with the time it was
first sent and, if some node took it (``pending``, or ``duplicate``: that node
already holds it), the time of that answer and the node. If no node took it,
it is unacknowledged: never counted as lost.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

from ops.chaos.history import Submission
from ops.load import Tx, submit_batch
from ops.soak import MAX_REQUEST, TICK_S, UNANSWERED, Generators, SoakConfig
from sequencer_net.node.network import Member

SUBMIT_TIMEOUT_S = 2.0  # a node that takes longer to answer a batch is given up on
SUSPECT_S = 2.0  # ... and tried after the others for this long
ACCEPTED = ("pending", "duplicate")  # the node holds it (duplicate: it already did)
RETRY_ELSEWHERE = ("overloaded",)  # another node may take it


class Load:
    """Offers ``rate`` transactions per second from a thread until stopped or ``seconds`` pass."""

    def __init__(
        self,
        members: Sequence[Member],
        genesis_path: Path,
        namespaces: Sequence[str],
        rate: int,
        tx_bytes: int,
        clock: Callable[[], float],
    ) -> None:
        self.members = list(members)
        self.rate = rate
        self.clock = clock
        self.feed = Generators(
            genesis_path, namespaces, SoakConfig(rate=rate, tx_bytes=tx_bytes, generators=1)
        )
        self.submissions: list[Submission] = []
        self.failed_requests = 0  # requests a node did not answer (then sent elsewhere)
        self.refused: Counter[str] = Counter()
        self.starved = 0  # transactions due that the generator had not encrypted yet
        self._suspect: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def prime(self) -> bool:
        """Wait until the generator is a few seconds ahead; whether it got there."""
        return self.feed.prime()

    def start(self, seconds: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(seconds,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop submitting and the generator (again: nothing more happens)."""
        if self._stop.is_set():
            return
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3 * SUBMIT_TIMEOUT_S * len(self.members))
        self.feed.stop()

    def _run(self, seconds: float) -> None:
        start = time.monotonic()
        sent = turn = 0
        while not self._stop.is_set() and (elapsed := time.monotonic() - start) < seconds:
            tick = int(elapsed / TICK_S) + 1
            due = round(self.rate * TICK_S * tick) - sent
            batch = self.feed.take(min(due, MAX_REQUEST))
            self.starved = max(self.starved, due - len(batch))
            if batch:
                self._submit(batch, turn)
                sent += len(batch)
                turn += 1
            self._stop.wait(max(0.0, start + tick * TICK_S - time.monotonic()))

    def order(self, turn: int) -> list[int]:
        """Nodes to try, the next in turn first; those that failed lately last."""
        n = len(self.members)
        ring = [(turn + k) % n for k in range(n)]
        now = time.monotonic()
        fine = [i for i in ring if self._suspect.get(i, 0.0) <= now]
        return fine + [i for i in ring if i not in fine]

    def _submit(self, batch: list[Tx], turn: int) -> None:
        sent = self.clock()
        pending = batch
        for node in self.order(turn):
            try:
                verdicts = submit_batch(self.members[node].api, pending, SUBMIT_TIMEOUT_S)
            except UNANSWERED:
                self.failed_requests += 1
                self._suspect[node] = time.monotonic() + SUSPECT_S
                continue
            answered = self.clock()
            retry = []
            for tx, verdict in zip(pending, verdicts, strict=True):
                if verdict in ACCEPTED:
                    self._record(tx, sent, answered, node)
                elif verdict in RETRY_ELSEWHERE:
                    retry.append(tx)
                else:
                    self.refused[verdict] += 1
                    self._record(tx, sent, None, None)
            pending = retry
            if not pending:
                return
        for tx in pending:
            self._record(tx, sent, None, None)

    def _record(self, tx: Tx, sent: float, acked: float | None, node: int | None) -> None:
        self.submissions.append(Submission(tx.digest.hex(), tx.namespace, sent, acked, node))
