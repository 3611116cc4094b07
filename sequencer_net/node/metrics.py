"""The node's Prometheus metrics (``seqnet_`` prefix), one registry per node.

A registry per node (not the process-global default) so several nodes can live
in one test process, and so ``/metrics`` shows exactly this node.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
INCLUSION_BUCKETS = (1, 2, 3, 4, 5, 6, 8, 10, 15, 20, 30, 50, 100)


class NodeMetrics:
    """Every metric a validator exports; names and labels are a public contract."""

    def __init__(self) -> None:
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}  # see ``labelled``
        self.registry = r = CollectorRegistry()
        self.up = Gauge("seqnet_up", "1 while the node runs", registry=r)
        self.height = Gauge("seqnet_height", "Committed height", registry=r)
        self.decrypted_height = Gauge(
            "seqnet_decrypted_height", "Highest height with every batch decrypted", registry=r
        )
        self.certified_height = Gauge(
            "seqnet_certified_height",
            "Highest height with every batch header up to it certified by a quorum",
            registry=r,
        )
        self.batch_certificates = Counter(
            "seqnet_batch_certificates",
            "Batch certificates stored (formed from votes, received on request or synced)",
            registry=r,
        )
        self.disputed_certificates = Counter(
            "seqnet_batch_certificates_disputed",
            "Valid batch certificates of a header other than the one this node signed "
            "(a quorum certified what this node did not decrypt: a serious fault)",
            registry=r,
        )
        self.round = Gauge("seqnet_round", "Current consensus round", registry=r)
        self.deprecated_view = Gauge(
            "seqnet_view", "Deprecated: the same value as seqnet_round; will be removed", registry=r
        )
        self.last_commit = Gauge(
            "seqnet_last_commit_timestamp_seconds", "Unix time of the last commit", registry=r
        )
        self.peers = Gauge("seqnet_connected_peers", "Connected libp2p peers", registry=r)
        self.rounds_timed_out = Counter(
            "seqnet_rounds_timed_out",
            "Rounds that ended in a timeout certificate (no block certified in time)",
            registry=r,
        )
        self.deprecated_view_changes = Counter(
            "seqnet_view_changes",
            "Deprecated: the same value as seqnet_rounds_timed_out_total; will be removed",
            registry=r,
        )
        self.timeouts = Counter("seqnet_timeouts", "Local round timeouts", registry=r)
        self.blocks = Counter("seqnet_blocks_committed", "Blocks committed", registry=r)
        self.transactions = Counter(
            "seqnet_transactions_decrypted",
            "Ordered transactions decrypted, by namespace",
            ["namespace"],
            registry=r,
        )
        self.invalid_transactions = Counter(
            "seqnet_transactions_invalid", "Ordered ciphertexts that did not open", registry=r
        )
        self.submit_to_commit = Histogram(
            "seqnet_submit_to_commit_seconds",
            "Submission (at this node) to commit, by namespace",
            ["namespace"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.commit_to_decrypt = Histogram(
            "seqnet_commit_to_decrypt_seconds",
            "Commit to decrypted batch stored, by namespace (once per namespace a batch holds)",
            ["namespace"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.submit_to_decrypt = Histogram(
            "seqnet_submit_to_decrypt_seconds",
            "Submission (at this node) to decrypted, by namespace",
            ["namespace"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.mempool_size = Gauge("seqnet_mempool_transactions", "Mempool entries", registry=r)
        self.mempool_bytes = Gauge("seqnet_mempool_bytes", "Mempool size in bytes", registry=r)
        self.admissions = Counter(
            "seqnet_admissions",
            "Transactions offered to the mempool, by source and result",
            ["source", "result"],
            registry=r,
        )
        self.messages = Counter(
            "seqnet_messages_received",
            "Frames received from validators, by protocol",
            ["protocol"],
            registry=r,
        )
        self.dropped = Counter(
            "seqnet_messages_dropped",
            "Frames not sent because the peer's outbound queue was full, by protocol",
            ["protocol"],
            registry=r,
        )
        self.rejected = Counter(
            "seqnet_messages_rejected",
            "Frames and inputs that break the protocol (malformed, forged, invalid), "
            "by protocol and reason: the only ones that may count against a peer",
            ["protocol", "reason"],
            registry=r,
        )
        self.ignored = Counter(
            "seqnet_messages_ignored",
            "Frames and inputs not acted on though the sender may be honest "
            "(busy, late, ahead of us, over its share), by protocol and reason",
            ["protocol", "reason"],
            registry=r,
        )
        self.served = Counter(
            "seqnet_requests_served",
            "Requests from peers answered, by kind "
            "(sync: blocks; shares: a share batch; certificates: a batch certificate; "
            "batch-fetch: a rollup's missed heights)",
            ["kind"],
            registry=r,
        )
        self.shed = Counter(
            "seqnet_inbound_connections_shed",
            "Inbound connections closed to keep room for validators, by reason "
            "(evicted: silent in the handshake; outsider-full: outsider slots taken)",
            ["reason"],
            registry=r,
        )
        self.gossip_published = Counter(
            "seqnet_gossip_batches_published",
            "Namespace batches offered on gossip topics someone follows, by outcome "
            "(yes; given-up: too large, or subscribers' queues stayed full)",
            ["outcome"],
            registry=r,
        )
        self.gossip_skipped = Counter(
            "seqnet_gossip_heights_skipped",
            "Certified heights not published because gossip fell behind (subscribers fetch them)",
            registry=r,
        )
        self._add_observed(r)
        self.up.set(1)

    def _add_observed(self, r: CollectorRegistry) -> None:
        """What this node sees of the others and of the order: see ``node.observed``."""
        self.validators = Gauge(
            "seqnet_connected_validators",
            "Other validators this node holds a connection to",
            registry=r,
        )
        self.round_failures = Counter(
            "seqnet_round_failures",
            "Rounds that ended in a timeout certificate, by the round's leader and what "
            "this node saw (no-proposal: none reached it; not-voted: one came but it did not "
            "vote for it; no-quorum: it voted, too few others did in time)",
            ["leader", "cause"],
            registry=r,
        )
        self.shares_received = Counter(
            "seqnet_decryption_shares_received",
            "Decryption share batches received, by sender (one per sender and block)",
            ["sender"],
            registry=r,
        )
        self.shares_late = Counter(
            "seqnet_decryption_shares_late",
            "Decryption share batches that arrived more than 1 s after this node committed "
            "their block, by sender",
            ["sender"],
            registry=r,
        )
        self.shares_invalid = Counter(
            "seqnet_decryption_shares_invalid",
            "Decryption share batches whose proof failed when combining, by sender",
            ["sender"],
            registry=r,
        )
        self.inclusion_delay = Histogram(
            "seqnet_inclusion_delay_blocks",
            "Blocks committed from a transaction's arrival at this node to the block "
            "that ordered it (1 = the next block)",
            buckets=INCLUSION_BUCKETS,
            registry=r,
        )
        self.inversions = Counter(
            "seqnet_order_inversions",
            "Pairs of transactions in one committed block ordered against the order "
            "they reached this node",
            registry=r,
        )
        self.pairs = Counter(
            "seqnet_order_pairs",
            "Pairs of transactions in one committed block that both reached this node "
            "(what inversions is a share of)",
            registry=r,
        )
        self.submit_to_certified = Histogram(
            "seqnet_submit_to_certified_seconds",
            "Submission (at this node) to its batch certified by a quorum, by namespace: "
            "from then on a rollup is served it with a proof",
            ["namespace"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def set_round(self, round_: int) -> None:
        self.round.set(round_)
        self.deprecated_view.set(round_)

    def round_timed_out(self) -> None:
        self.rounds_timed_out.inc()
        self.deprecated_view_changes.inc()

    def labelled(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, looked up once per label set.

        prometheus_client's ``labels()`` costs more than what the hot paths
        count (an admission, a frame, a decrypted transaction). Label values
        come from the code and the genesis, so the cache stays small.
        """
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def reject(self, protocol: str, reason: str, count: int = 1) -> None:
        """[REJECT]: the input breaks the protocol; the sender is at fault."""
        self.labelled(self.rejected, protocol, reason).inc(count)

    def ignore(self, protocol: str, reason: str) -> None:
        """[IGNORE]: not acted on; proves nothing against the sender."""
        self.labelled(self.ignored, protocol, reason).inc()
