"""What a chaos run recorded: plain data, so the checkers are pure functions over it.

Everything here was seen from outside the nodes, through their public
interfaces, with the time it was seen (seconds since the load started, one
monotonic clock for the whole machine): each poll of ``/v1/status``, what each
node serves for each certified height, each ``/metrics`` scrape, each batch
the verifying rollup follower took, each submission and its acknowledgement,
and each fault as it was applied and healed. A history round-trips through
JSON (the report keeps it), so a verdict can be checked again later.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Status:
    """One poll of a node's ``/v1/status``; ``height`` None: it did not answer.

    A node that is still catching up after a start (``syncing``) reports
    height 0; checkers skip those samples.
    """

    t: float
    node: int
    height: int | None
    round: int | None = None
    leader: int | None = None
    decrypted: int | None = None
    certified: int | None = None
    syncing: bool = False

    @property
    def committing(self) -> bool:
        """Answered with a committed height that means something."""
        return self.height is not None and not self.syncing


@dataclass(frozen=True, slots=True)
class BatchSeen:
    """What ``node`` serves for a certified ``height``: block, batch header hash, transactions.

    ``txs``: (namespace, digest, decrypted) by position, from ``/v1/batches/{h}``;
    ``batch_hash`` from ``/v1/namespaces/{ns}/batches/{h}`` (the certified header,
    the same for every namespace of the height); None for a height the node had
    decrypted but not certified (read at the end of a run).
    """

    t: float
    node: int
    height: int
    block_hash: str
    batch_hash: str | None
    txs: tuple[tuple[str, str, bool], ...] = ()

    @property
    def digests(self) -> tuple[str, ...]:
        """The transactions' digests in the order the node serves them."""
        return tuple(digest for _, digest, _ in self.txs)


@dataclass(frozen=True, slots=True)
class BlockSeen:
    """The block ``node`` committed at ``height`` (``/v1/blocks/{h}``): read at the end of
    a run for the heights where the nodes' batches differ, to tell a fork of the chain
    from a node that serves batches of its own on the same chain."""

    t: float
    node: int
    height: int
    block_hash: str


@dataclass(frozen=True, slots=True)
class Held:
    """Where an acknowledged transaction the rollup never received was at the end of a
    run: ``node``'s ``/v1/transactions/{digest}`` status (pending, committed, decrypted,
    invalid, unknown)."""

    t: float
    node: int
    digest: str
    status: str


@dataclass(frozen=True, slots=True)
class Delivery:
    """One verified namespace batch the rollup follower took (empty heights included)."""

    t: float
    namespace: str
    height: int
    batch_hash: str
    digests: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Submission:
    """One transaction offered: when it was first sent, and when and by whom acknowledged.

    ``acked`` None: no node said it holds it (every node tried failed or
    refused); such a transaction is unacknowledged, never counted as lost.
    """

    digest: str
    namespace: str
    sent: float
    acked: float | None = None
    node: int | None = None


DOWN_KINDS = ("kill", "pause", "restart_all", "partition")  # their nodes count as down


@dataclass(frozen=True, slots=True)
class Window:
    """A fault as it happened: the nodes it took, applied at ``start``, healed at ``end``.

    ``nodes``: those it killed, paused, cut off from the largest side of a
    partition, slowed (delay_loss) or made Byzantine. Only the first three
    kinds' and partitions' nodes count as down for the quorum (:attr:`down`).
    """

    index: int  # the fault's position in the scenario, from 1
    kind: str
    nodes: tuple[int, ...]
    start: float
    end: float
    targets: str = ""  # as the scenario wrote them, e.g. "f+1", "leader | rest"
    behaviour: str = ""  # byzantine: what the nodes did, e.g. "censor"
    namespace: str = ""  # byzantine censor: the namespace left out
    detail: str = ""  # for people: "loss 20%, delay 30 ms", "sides 2 | 0,1,3"

    def holds(self, t: float) -> bool:
        return self.start <= t < self.end

    @property
    def down(self) -> tuple[int, ...]:
        """The nodes that count as down while it holds."""
        return self.nodes if self.kind in DOWN_KINDS else ()


@dataclass(frozen=True, slots=True)
class Scrape:
    """One read of a node's ``/metrics``: heights, decrypted transactions per namespace,
    and what names a faulty validator: decryption share batches received and found
    invalid per sender, failed rounds per leader (keys: the label, a node index); and
    failed rounds by cause (no-proposal, not-voted, no-quorum)."""

    t: float
    node: int
    height: float | None
    certified: float | None
    decrypted: dict[str, float] = field(default_factory=dict)
    shares: dict[str, float] = field(default_factory=dict)
    invalid_shares: dict[str, float] = field(default_factory=dict)
    round_failures: dict[str, float] = field(default_factory=dict)
    failure_causes: dict[str, float] = field(default_factory=dict)  # failed rounds by cause


@dataclass
class History:
    """One run, everything the checkers need.

    ``baseline`` and ``final`` are each node's status before the load and
    after the drain; the first and last scrape of each node were taken right
    after them. ``load_end``: when the load and the fault schedule ended;
    ``end``: when observation ended (after the drain).
    """

    scenario: str
    n: int
    f: int
    quorum: int
    liveness_bound_s: float
    start_height: int
    load_end: float
    end: float
    namespaces: tuple[str, ...] = ()
    statuses: list[Status] = field(default_factory=list)
    batches: list[BatchSeen] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    submissions: list[Submission] = field(default_factory=list)
    windows: list[Window] = field(default_factory=list)
    scrapes: list[Scrape] = field(default_factory=list)
    baseline: dict[int, Status] = field(default_factory=dict)
    final: dict[int, Status] = field(default_factory=dict)
    blocks: list[BlockSeen] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)


def to_json(history: History) -> dict[str, Any]:
    """A JSON-ready dict (tuples become lists)."""
    return dataclasses.asdict(history)


def from_json(data: dict[str, Any]) -> History:
    """The history :func:`to_json` wrote."""
    return History(
        scenario=data["scenario"],
        n=data["n"],
        f=data["f"],
        quorum=data["quorum"],
        liveness_bound_s=data["liveness_bound_s"],
        start_height=data["start_height"],
        load_end=data["load_end"],
        end=data["end"],
        namespaces=tuple(data.get("namespaces", ())),
        statuses=[Status(**s) for s in data["statuses"]],
        batches=[
            BatchSeen(**{**b, "txs": tuple(tuple(tx) for tx in b["txs"])}) for b in data["batches"]
        ],
        deliveries=[Delivery(**{**d, "digests": tuple(d["digests"])}) for d in data["deliveries"]],
        submissions=[Submission(**s) for s in data["submissions"]],
        windows=[Window(**{**w, "nodes": tuple(w["nodes"])}) for w in data["windows"]],
        scrapes=[Scrape(**s) for s in data["scrapes"]],
        baseline={int(k): Status(**v) for k, v in data["baseline"].items()},
        final={int(k): Status(**v) for k, v in data["final"].items()},
        blocks=[BlockSeen(**b) for b in data.get("blocks", [])],
        held=[Held(**x) for x in data.get("held", [])],
    )
