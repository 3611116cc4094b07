"""The fair-ordering payload: reports in, a checked order out (a ``PayloadApp``).

Theory of operation
-------------------
The driver tells the app when this node first sees a transaction digest and at
what local time. Each vote or timeout carries the node's signed report of what
it has seen and not yet seen ordered. The leader proposes ``n - f`` reports from
distinct validators, each newer than any report of that validator already on
the branch, and the order its policy computes from them. Every replica checks
the reports' signatures and freshness and recomputes the order; a block whose
order differs — including one that leaves out a transaction present in ``f+1``
reports — gets no honest vote. With fewer than ``n - f`` fresh reports the
leader proposes an empty block, which keeps consensus live without ordering
anything unfairly.

In a node (``bodies`` given) the payload also carries each ordered
transaction's bytes, checked against its digest, so every validator can decrypt
the committed batch from the block alone. An idle leader (nothing ordered,
nothing pending, no recent block with transactions still to commit) declines
to propose until ``heartbeat_ms`` has passed since the last block, so an idle
cluster makes a few empty blocks per second, not hundreds.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Container
from dataclasses import dataclass, field
from typing import Annotated, Protocol

from ordering.blocktree import BlockLookup
from ordering.fair.policies import Policy
from ordering.fair.reports import (
    MAX_REPORT_ENTRIES,
    SEQ_PROPOSAL,
    SEQ_TIMEOUT,
    SEQ_VOTE,
    OrderReport,
    report_seq,
)
from ordering.messages import MAX_PAYLOAD_BYTES, Block
from sequencer_net.base import codec
from sequencer_net.base.codec import DecodeError, Digest, MaxItems, Size
from sequencer_net.base.committee import Committee
from sequencer_net.base.signing import BadSignature, Signed, SigningKey

MAX_ORDER = 16_384
MAX_TX_BYTES = 128 * 1024  # the largest transaction body a payload carries (a node's is less)
# What one more ordered transaction can add to an encoded payload beyond its body: its
# digest in ``order`` (34 bytes) and the CBOR headers of both (up to 5 + 5).
ITEM_OVERHEAD = 44
ARRAY_SLACK = 16  # the two arrays' length headers may grow as items are added
RECENT_WORK_MS = 10_000  # a pending digest older than this no longer keeps blocks coming


@dataclass(frozen=True, slots=True)
class FairPayload:
    """A block's payload: the reports it was ordered from, the order, the bodies.

    ``txs[i]`` is the transaction named by ``order[i]`` (empty in the simulator,
    which orders digests only).
    """

    reports: Annotated[tuple[Signed[OrderReport], ...], MaxItems(1024)]
    order: Annotated[tuple[Digest, ...], MaxItems(MAX_ORDER)]
    txs: Annotated[tuple[Annotated[bytes, Size(max=MAX_TX_BYTES)], ...], MaxItems(MAX_ORDER)]


class TxBodies(Protocol):
    """Where a node keeps transaction bytes (its mempool)."""

    def body(self, digest: bytes) -> bytes | None:
        """The bytes of a transaction we hold, or None."""

    def digest_of(self, body: bytes) -> bytes | None:
        """The digest of a well-formed transaction, None for anything else."""


@dataclass
class Branch:
    """What a chain of uncommitted blocks ordered (on top of ``committed``), and report seqs."""

    committed: Container[bytes]
    ordered: set[bytes] = field(default_factory=set)
    last_seq: dict[int, int] = field(default_factory=dict)

    def __contains__(self, digest: object) -> bool:
        return digest in self.ordered or digest in self.committed

    def add(self, payload: FairPayload) -> None:
        self.ordered.update(payload.order)
        raise_report_seqs(self.last_seq, payload)


def _keep_newest(newest: dict[int, OrderReport], report: OrderReport) -> None:
    """Hold ``report`` as its node's newest unless a later one is held already."""
    held = newest.get(report.node)
    if held is None or report.seq > held.seq:
        newest[report.node] = report


def raise_report_seqs(last_seq: dict[int, int], payload: FairPayload) -> None:
    """Note each node's newest report seq that ``payload`` carries."""
    for r in payload.reports:
        node, seq = r.statement.node, r.statement.seq
        last_seq[node] = max(seq, last_seq.get(node, -1))


class FairOrderingApp:
    """One validator's fair-ordering state (pure: time comes in as arguments)."""

    def __init__(
        self,
        committee: Committee,
        me: int,
        key: SigningKey,
        policy: Policy,
        *,
        remembered: int = 200_000,
        bodies: TxBodies | None = None,
        heartbeat_ms: int = 0,
    ) -> None:
        self.committee, self.me, self._key, self.policy = committee, me, key, policy
        self._bodies, self.heartbeat_ms = bodies, heartbeat_ms
        self.now_ms = 0  # the driver's clock, set through observe_time
        self._last_block_ms = 0
        self.pending: OrderedDict[bytes, int] = OrderedDict()  # digest -> first-seen local time
        self.received: dict[int, OrderReport] = {}  # newest verified report per node
        self._latest: dict[int, OrderReport] = {}  # newest seen per node, also inside blocks
        self._payloads: dict[bytes, tuple[int, FairPayload]] = {}  # block hash -> (height, payload)
        self._signed: dict[tuple[int, int], Signed[OrderReport]] = {}  # (node, seq) -> report
        self._committed_recent: OrderedDict[bytes, None] = OrderedDict()
        # each node's newest report seq in a committed block (what the committed digests are
        # is _committed_recent: a Branch's growing ``ordered`` set would keep every one forever)
        self._committed_seq: dict[int, int] = {}
        self.remembered = remembered
        self._committed_height = 0
        self.rejected: dict[str, int] = {}
        self.last_committed: tuple[bytes, FairPayload] | None = None  # saves a decode downstream
        self._proposed: tuple[bytes, FairPayload] | None = None  # our latest proposal

    # ------------------------------------------------------------ inputs from the driver

    def on_transaction(self, digest: bytes, local_time_ms: int) -> None:
        """This node saw ``digest`` for the first time at ``local_time_ms``."""
        if digest not in self.pending and digest not in self._committed_recent:
            self.pending[digest] = local_time_ms

    def remember_committed(self, digests: list[bytes]) -> None:
        """Digests committed before a restart, oldest first: never ordered again.

        A restarted node loads the last ``remembered`` of them from its store, so
        its set equals that of a node that never stopped (both are the last
        ``remembered`` digests in commit order) and both check proposals alike.
        """
        for d in digests[-self.remembered :]:
            self._committed_recent[d] = None
        while len(self._committed_recent) > self.remembered:
            self._committed_recent.popitem(last=False)

    def observe_time(self, now_ms: int) -> None:
        """The driver's local clock (the app itself never reads one)."""
        self.now_ms = now_ms

    # ------------------------------------------------------------ reports

    def make_report(self, round_: int, timeout: bool) -> bytes:
        signed = self._own_report(round_, SEQ_TIMEOUT if timeout else SEQ_VOTE)
        return codec.encode(signed, Signed[OrderReport])

    def _own_report(self, round_: int, kind: int) -> Signed[OrderReport]:
        entries = itertools.islice(self.pending.items(), MAX_REPORT_ENTRIES)
        report = OrderReport.of(self.me, report_seq(round_, kind), entries)
        self.received[self.me] = report
        return self._key.sign(report, self.committee.chain_id, self.me)

    def on_report(self, signer: int, data: bytes) -> None:
        try:
            signed: Signed[OrderReport] = codec.decode(Signed[OrderReport], data)
            if signed.signer != signer or signed.statement.node != signer:
                raise BadSignature("report signed for another node")
            report = signed.verify(self.committee).statement
        except (DecodeError, BadSignature) as exc:
            self._count(f"report-{type(exc).__name__}")
            return
        self._signed[(report.node, report.seq)] = signed
        _keep_newest(self.received, report)
        _keep_newest(self._latest, report)

    def has_reported(self, node: int, digest: bytes) -> bool:
        """Whether ``node``'s newest report we have seen lists ``digest`` (it holds it),
        or is full (``MAX_REPORT_ENTRIES``: then it may hold more than it lists).

        Why: a validator relays a transaction to another only if that peer's reports
        do not show it already (``sequencer_net.node.ingress``).
        """
        report = self._latest.get(node)
        if report is None:
            return False
        listed = report.digest_set()
        return digest in listed or len(listed) >= MAX_REPORT_ENTRIES

    def _count(self, reason: str) -> None:
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    # ------------------------------------------------------------ proposing

    def propose_payload(
        self, parent_hash: bytes, height: int, round_: int, ancestors: BlockLookup
    ) -> bytes | None:
        if height == 1:
            return codec.encode(FairPayload((), (), ()))  # nobody has reported anything yet
        branch = self._branch(parent_hash, ancestors)
        own = self._own_report(round_, SEQ_PROPOSAL)
        self._signed[(self.me, own.statement.seq)] = own
        reports = self.select_reports(branch, round_)
        if reports is None:
            return None  # wait for more reports; the core asks again when one arrives
        statements = [r.statement for r in reports]
        order = self.policy.order(statements, self.me, branch)
        if not order and self._is_idle(parent_hash, ancestors):
            return None  # nothing to order: wait for work or the heartbeat
        room = MAX_PAYLOAD_BYTES - len(codec.encode(FairPayload(tuple(reports), (), ())))
        txs = self._bodies_for(order, room - ARRAY_SLACK)
        if txs is None:
            return None  # a reported transaction has not reached us yet: wait for it
        if self._bodies is not None:
            order = order[: len(txs)]  # what fits in the block; the rest heads the next one
        self._last_block_ms = self.now_ms
        payload = FairPayload(tuple(reports), tuple(order), txs)
        data = codec.encode(payload)
        self._proposed = (data, payload)  # our block's payload: no need to decode it again
        return data

    def _bodies_for(self, order: list[bytes], room: int) -> tuple[bytes, ...] | None:
        """The bodies of the longest prefix of ``order`` that fits in ``room`` bytes.

        None if a body of that prefix is not here yet. Without bodies (the
        simulator orders digests only) none.
        """
        if self._bodies is None:
            return ()
        txs: list[bytes] = []
        for digest in order:
            body = self._bodies.body(digest)
            if body is None:
                return None
            room -= len(body) + ITEM_OVERHEAD
            if room < 0:
                break
            txs.append(body)
        return tuple(txs)

    def _is_idle(self, parent_hash: bytes, ancestors: BlockLookup) -> bool:
        """No reason for a block now: nothing recent pending, last two blocks empty, no heartbeat.

        Two empty blocks after the last one with transactions are still needed:
        the second carries the certificate that commits it on every replica.
        """
        if self.heartbeat_ms <= 0 or self.now_ms - self._last_block_ms >= self.heartbeat_ms:
            return False
        if self.pending and self.now_ms - next(reversed(self.pending.values())) < RECENT_WORK_MS:
            return False
        digest = parent_hash
        for _ in range(2):
            block = ancestors(digest)
            if block is None:
                return False
            payload = self._payload_of(digest, block)
            if payload is None or payload.order:
                return False
            digest = block.parent_qc.block_hash
        return True

    def fresh_reports(self, branch: Branch, round_: int) -> list[Signed[OrderReport]]:
        """Reports we hold that a block of ``round_`` may carry on this branch."""
        return [
            self._signed[(node, r.seq)]
            for node, r in sorted(self.received.items())
            if _is_fresh(r.seq, node, branch, round_) and (node, r.seq) in self._signed
        ]

    def select_reports(self, branch: Branch, round_: int) -> list[Signed[OrderReport]] | None:
        """Our own report plus the freshest others (n - f in all)."""
        need = self.committee.n - self.committee.f
        fresh = self.fresh_reports(branch, round_)
        fresh.sort(key=lambda s: (s.statement.node != self.me, -s.statement.seq, s.statement.node))
        if len(fresh) < need:
            return None
        return sorted(fresh[:need], key=lambda s: s.statement.node)

    # ------------------------------------------------------------ validating

    def validate_payload(self, block: Block, digest: bytes, ancestors: BlockLookup) -> bool:
        try:
            payload: FairPayload = codec.decode(FairPayload, block.payload)
        except DecodeError:
            return self._refuse("payload-malformed")
        if not payload.reports:  # only the first block may go without reports
            first = block.height == 1 and not payload.order and not payload.txs
            return first or self._refuse("missing-reports")
        if not self._bodies_match(payload):
            return self._refuse("tx-bodies")
        branch = self._branch(block.parent_qc.block_hash, ancestors)
        reason = self._check_reports(payload, branch, block.round)
        if reason is not None:
            return self._refuse(reason)
        statements = [r.statement for r in payload.reports]
        order = self.policy.order(statements, block.proposer, branch)
        if list(payload.order) != order[: len(payload.order)]:
            return self._refuse("order-differs")
        if len(payload.order) < len(order) and not _full(block.payload):
            return self._refuse("order-cut-short")
        self._payloads[digest] = (block.height, payload)
        self._last_block_ms = self.now_ms
        for r in payload.reports:
            _keep_newest(self._latest, r.statement)
        return True

    def _bodies_match(self, payload: FairPayload) -> bool:
        """Each body is a well-formed transaction with the digest the order names."""
        if self._bodies is None:
            return not payload.txs
        if len(payload.txs) != len(payload.order):
            return False
        digest_of = self._bodies.digest_of
        return all(digest_of(t) == d for t, d in zip(payload.txs, payload.order, strict=True))

    def _check_reports(self, payload: FairPayload, branch: Branch, round_: int) -> str | None:
        nodes = [r.statement.node for r in payload.reports]
        if len(nodes) != self.committee.n - self.committee.f or len(set(nodes)) != len(nodes):
            return "wrong-report-count"
        for r in payload.reports:
            if r.signer != r.statement.node:
                return "report-signer"
            if not _is_fresh(r.statement.seq, r.signer, branch, round_):
                return "stale-report"
            if self._signed.get((r.signer, r.statement.seq)) == r:
                continue  # verified on arrival: equal fields cost far less than a signature
            try:
                r.verify(self.committee)
            except BadSignature:
                return "report-signature"
        return None

    def _refuse(self, reason: str) -> bool:
        self._count(reason)
        return False

    # ------------------------------------------------------------ branches and commits

    def _branch(self, tip: bytes, ancestors: BlockLookup) -> Branch:
        """Committed state plus every uncommitted block from ``tip`` down."""
        branch = Branch(self._committed_recent, set(), dict(self._committed_seq))
        digest: bytes | None = tip
        while digest is not None:
            block = ancestors(digest)
            if block is None or block.height <= self._committed_height:
                break
            payload = self._payload_of(digest, block)
            if payload is not None:
                branch.add(payload)
            digest = block.parent_qc.block_hash
        return branch

    def _payload_of(self, digest: bytes, block: Block) -> FairPayload | None:
        known = self._payloads.get(digest)
        if known is not None:
            return known[1]
        if self._proposed is not None and block.payload == self._proposed[0]:
            self._payloads[digest] = (block.height, self._proposed[1])
            return self._proposed[1]
        try:  # a block that arrived by sync: certified by a quorum, so decode only
            payload: FairPayload = codec.decode(FairPayload, block.payload)
        except DecodeError:
            return None
        self._payloads[digest] = (block.height, payload)
        return payload

    def on_commit(self, block: Block, digest: bytes) -> None:
        payload = self._payload_of(digest, block)
        self._committed_height = block.height
        self._payloads = {d: hp for d, hp in self._payloads.items() if hp[0] > block.height}
        if payload is None:
            return
        self.last_committed = (digest, payload)
        raise_report_seqs(self._committed_seq, payload)
        for d in payload.order:
            self.pending.pop(d, None)
            self._committed_recent[d] = None
        while len(self._committed_recent) > self.remembered:
            self._committed_recent.popitem(last=False)
        self._forget_old_reports()

    def _forget_old_reports(self) -> None:
        floor = self._committed_seq
        self._signed = {
            (node, seq): s for (node, seq), s in self._signed.items() if seq > floor.get(node, -1)
        }


def _full(payload: bytes) -> bool:
    """Whether a payload is too full to have carried one more transaction of any size.

    A proposer cuts the order where the next body would not fit in the block;
    since replicas may not hold that body, they accept a cut only where even
    the largest body could not have fitted. A cut-off transaction is not lost:
    still unordered, it heads the next block's order.
    """
    return len(payload) + ITEM_OVERHEAD + MAX_TX_BYTES + ARRAY_SLACK > MAX_PAYLOAD_BYTES


def _is_fresh(seq: int, node: int, branch: Branch, round_: int) -> bool:
    """Made in the previous round or later, and newer than the branch's last from ``node``.

    The round floor stops a leader from proposing with old reports it kept back,
    which would let it leave out transactions reported since.
    """
    return seq >= report_seq(round_ - 1, SEQ_PROPOSAL) and seq > branch.last_seq.get(node, -1)
