"""One validator, assembled: host, ingress, consensus driver, decryption, sync, API.

Theory of operation
-------------------
Frames from peers arrive per protocol (``p2p.host``) and go to their handler:
consensus to the :class:`~sequencer_net.node.driver.ConsensusDriver`, transaction batches to the
:class:`~sequencer_net.node.ingress.TxIngress`, share batches to the
:class:`~sequencer_net.node.decryption.DecryptionService`, which passes the batch
votes and certificate messages of the same protocol on to the
:class:`~sequencer_net.node.attestation.Attestation`. On start the validator
first catches up from its peers' stores, then builds the consensus core from
its own store and runs. A committed block goes from the node to the mempool
(forget its transactions) and to decryption; a decrypted batch is stored, ends
the latency clock of the transactions submitted here, and goes to attestation,
which signs its header and collects a quorum's signatures into a batch
certificate (``certified_height``, ``wait_certified``). Each certified height's
namespace batches go to rollups through the API (``rollup_api``) and on
gossip (:class:`~sequencer_net.node.publisher.BatchPublisher`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from delivery.gossip import message_id
from mev.committed import is_well_formed
from mev.decryptor import Decryptor
from mev.kem import Ciphertext
from mev.mempool import Admission, EncryptedMempool
from ordering.blocktree import RETENTION
from ordering.events import Commit
from ordering.fair.app import FairOrderingApp, FairPayload
from ordering.fair.policies import DEFAULT_POLICY, make_policy
from ordering.leader import leader_of
from ordering.messages import genesis_qc
from ordering.pacemaker import BASE_TIMEOUT_MS
from ordering.safety import SafetyState
from ordering.validation import MessageValidator
from p2p.host import CONSENSUS_PROTOCOL, SHARES_PROTOCOL, TX_PROTOCOL, ValidatorHost
from sequencer_net.base.codec import DecodeError
from sequencer_net.node.admin import ChaosHooks
from sequencer_net.node.admin import install as install_chaos_hooks
from sequencer_net.node.attestation import Attestation
from sequencer_net.node.batches import CertifiedBatches
from sequencer_net.node.byzantine import Misbehaviour
from sequencer_net.node.catchup import CatchUp, SyncServer
from sequencer_net.node.config import HEARTBEAT_MS
from sequencer_net.node.decryption import DecryptionService, read_payload
from sequencer_net.node.driver import ConsensusDriver, Outboxes
from sequencer_net.node.genesis import Genesis, NodeKeys, fingerprint
from sequencer_net.node.genesis import digest as genesis_digest
from sequencer_net.node.ingress import TxIngress, now_ms
from sequencer_net.node.logs import event
from sequencer_net.node.metrics import NodeMetrics
from sequencer_net.node.observed import ArrivalLog, CertifyClock
from sequencer_net.node.publisher import BatchPublisher
from sequencer_net.node.storage import StorageError, Store
from sequencer_net.node.wire import DecryptedBatch

log = logging.getLogger("seqnet.validator")
MAX_TRACKED = 100_000  # local submissions whose latency we still measure
STALLED_S = 5.0  # no commit for this long: ask peers' stores whether we fell behind


@dataclass(frozen=True, slots=True)
class Settings:
    policy: str = DEFAULT_POLICY
    base_timeout_ms: int = BASE_TIMEOUT_MS
    heartbeat_ms: int = HEARTBEAT_MS
    listen: str | None = None
    api: str | None = None  # host:port of the HTTP API
    metrics: str | None = None  # host:port of /metrics
    retention: int = RETENTION  # committed blocks kept in memory to serve peers' block requests
    new_node: bool = False  # the operator says: this validator never ran (its store may be new)
    # test networks only (node.admin): admin endpoint, its token, misbehaviour at start
    admin: str | None = None
    admin_token: str = ""
    misbehaviour: Misbehaviour | None = None


class Validator:
    def __init__(self, genesis: Genesis, keys: NodeKeys, store: Store, settings: Settings) -> None:
        self.genesis, self.keys, self.store, self.settings = genesis, keys, store, settings
        self.reader = Store(store.path, genesis.chain_id)  # API and sync reads, beside the writer
        self.committee = committee = genesis.committee()
        self.me = me = keys.index
        self.metrics = NodeMetrics()
        self.peers = [i for i in range(committee.n) if i != me]
        addresses = [(v.peer_id, v.address) for v in genesis.validators]
        self.host = ValidatorHost(
            keys.signing_key.seed,
            me,
            addresses,
            self._on_frame,
            listen=settings.listen or addresses[me][1],
            serve_sync=SyncServer(
                self.reader, lambda: self.metrics.served.labels("sync").inc()
            ).answer,
            genesis_id=genesis_digest(genesis),  # a peer with another genesis is refused
            on_shed=lambda reason: self.metrics.shed.labels(reason).inc(),
            on_reject=lambda protocol, why: self.metrics.reject(_short(protocol), why),
            on_ignore=lambda protocol, why: self.metrics.ignore(_short(protocol), why),
            serve_fetch=lambda request: self.publisher.answer(request),
            gossip_id=message_id,
        )
        self.outboxes = Outboxes(
            self.peers,
            self.host.send,
            lambda protocol: self.metrics.dropped.labels(_short(protocol)).inc(),
        )
        self.mempool = EncryptedMempool(genesis.threshold_key, genesis.chain_id, genesis.namespaces)
        self.ingress = TxIngress(
            self.mempool,
            self.peers,
            lambda peer, data: self.outboxes.post(peer, data, TX_PROTOCOL),
            self._admitted,
            self.metrics,
            committed=self.reader.committed_among,
            peer_has=lambda peer, digest: self.app.has_reported(peer, digest),
        )
        self.app = self._new_app()
        checker = MessageValidator(committee)
        self.catchup = CatchUp(
            checker, store, self.peers, self.host.request, self._on_commit, self.order_of
        )
        self.attestation = Attestation(
            committee,
            me,
            keys.signing_key,
            store,
            self.peers,
            lambda peer, data: self.outboxes.post(peer, data, SHARES_PROTOCOL),
            self.metrics,
            on_certified=self._certified,
        )
        self.decryption = DecryptionService(
            Decryptor(keys.key_share, genesis.threshold_key, genesis.chain_id),
            checker,
            store,
            self.peers,
            lambda peer, data: self.outboxes.post(peer, data, SHARES_PROTOCOL),
            self.catchup.batch_from_peers,
            self.metrics,
            self._was_checked,
            self._decrypted,
            self._payload_of,
            on_attestation=self.attestation.on_message,
        )
        self.batches = CertifiedBatches(self.reader)  # shared by the API and the publisher
        self.publisher = BatchPublisher(
            self.host.gossip,
            self.batches,
            genesis.namespaces,
            lambda: self.certified_height,
            self.wait_certified,
            self.metrics,
        )
        self.driver: ConsensusDriver | None = None
        self._submitted: OrderedDict[bytes, float] = OrderedDict()  # digest -> submit time
        self._awaiting_decryption: set[bytes] = set()  # committed, not yet decrypted
        self._arrivals = ArrivalLog()  # for inclusion delay and inversions (node.observed)
        self._certify_clock = CertifyClock()
        self._committed_height = store.committed_tip().height
        self.api_address = self.metrics_address = ""
        self.decrypted_height = store.decrypted_tip()  # certified_height never exceeds it
        self.genesis_fingerprint = fingerprint(genesis)  # in every status answer
        self.chaos: ChaosHooks | None = None  # faults and misbehaviour: test networks only
        if settings.admin or settings.misbehaviour is not None:
            self.chaos = install_chaos_hooks(self, settings.misbehaviour or Misbehaviour())

    # ------------------------------------------------------------ running

    def close(self) -> None:
        """Close both database connections (after ``run`` has returned)."""
        self.reader.close()
        self.store.close()

    def _new_app(self) -> FairOrderingApp:
        committee = self.committee
        return FairOrderingApp(
            committee,
            self.me,
            self.keys.signing_key,
            make_policy(self.settings.policy, committee.n, committee.f),
            bodies=self.ingress,
            heartbeat_ms=self.settings.heartbeat_ms,
        )

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Serve until cancelled; ``started`` once the core runs and the API listens."""
        from sequencer_net.node.admin import admin_app
        from sequencer_net.node.api import build_app, metrics_app, serve_http

        async with self.host.running(), trio.open_nursery() as nursery:
            nursery.start_soon(self._stop_on_damage)
            await nursery.start(self.outboxes.run)
            if self.settings.api:
                binds = await nursery.start(serve_http, build_app(self), self.settings.api)
                self.api_address = binds[0]
            if self.settings.metrics:
                binds = await nursery.start(serve_http, metrics_app(self), self.settings.metrics)
                self.metrics_address = binds[0]
            if self.chaos is not None:
                nursery.start_soon(self.chaos.byzantine.run)
                if self.settings.admin:
                    app = admin_app(self.chaos, self.settings.admin_token)
                    await nursery.start(serve_http, app, self.settings.admin)
            nursery.start_soon(self.ingress.check_loop)
            nursery.start_soon(self.ingress.relay_loop)
            await self._refuse_lost_state()
            never_ran = self.store.restored() is None
            await self.catchup.run()
            if never_ran:
                self._abstain_where_peers_were()
            await nursery.start(self._run_consensus)
            nursery.start_soon(self.decryption.run)
            nursery.start_soon(self.attestation.run)
            nursery.start_soon(self.publisher.run)
            nursery.start_soon(self._heartbeat)
            task_status.started()

    async def _stop_on_damage(self) -> None:
        """Stop the node with the store's error once damage is found anywhere.

        Damage may surface in a call whose caller carries on (a peer's sync
        request, an API read); a node must not keep voting on a store it can no
        longer trust, so the first damage seen ends ``run`` with that error.
        """
        found: list[StorageError] = []
        seen = trio.Event()
        token = trio.lowlevel.current_trio_token()

        def on_damage(error: StorageError) -> None:  # any thread
            found.append(error)
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(seen.set)

        self.store.on_damage = self.reader.on_damage = on_damage
        await seen.wait()
        raise found[0]

    async def _refuse_lost_state(self) -> None:
        """Refuse to start on a database created just now while peers have committed.

        The file was missing or empty: deleted or truncated, so the safety state
        that stops this validator from voting twice in a round may be gone. Only
        the operator can say that it truly never ran (``new_node``).
        """
        if self.store.created and not self.settings.new_node and await self.catchup.peers_ahead():
            raise StorageError(
                f"{self.store.path} was missing or empty but peers have committed blocks: "
                "this validator may have voted before. Restore its database, or start it "
                "with --new-node if it never ran."
            )

    def _abstain_where_peers_were(self) -> None:
        """A validator with no safety state that caught up votes only in later rounds.

        It may have voted in the rounds its peers certified before it lost its
        state; it may not vote there again. (A round past the highest certified
        one could only be voted in twice if its leader equivocated as well.)
        """
        reached = self.catchup.certified_round
        if reached:
            self.store.save_safety(SafetyState(reached + 1, genesis_qc(self.genesis.chain_id)))
            event(log, "abstaining", through_round=reached + 1)

    async def _run_consensus(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """The consensus driver; rebuilt from the store when the node fell too far behind.

        Peers keep only the last ``retention`` committed blocks in memory for the
        core's block sync. A node cut off for longer cannot fetch its way back
        that way, so when it has not committed for ``STALLED_S`` it asks its
        peers' stores; if they had more, it rejoins like a restarted node.
        """
        while True:
            self.driver = self._build_driver()
            async with trio.open_nursery() as nursery:
                await nursery.start(self.driver.run)
                task_status.started()
                task_status = trio.TASK_STATUS_IGNORED
                await self._until_fallen_behind()
                nursery.cancel_scope.cancel()
            await self.catchup.run()  # the old core is stopped: nothing else appends now
            self.app = self._new_app()
            for digest in self.mempool.digests():
                self.app.on_transaction(digest, now_ms())
            event(log, "rejoining", height=self.store.committed_tip().height)

    async def _until_fallen_behind(self) -> None:
        while True:
            await trio.sleep(STALLED_S / 2)
            driver = self.driver
            if driver is None or time.time() - driver.last_progress_at < STALLED_S:
                continue
            if await self.catchup.peers_ahead():
                return

    def _build_driver(self) -> ConsensusDriver:
        # the app's window is part of what a proposal is checked against: load all of it
        recent = self.store.recent_digests(self.app.remembered)
        self.app.remember_committed(recent)  # a replay stays refused across restarts
        self.mempool.mark_committed(recent)  # keeps its own (smaller) window of them
        self.metrics.height.set(self.store.committed_tip().height)
        self.decrypted_height = self.store.decrypted_tip()
        self.metrics.decrypted_height.set(self.decrypted_height)
        return ConsensusDriver(
            self.committee,
            self.me,
            self.keys.signing_key,
            self.app,
            self.store,
            self.outboxes,
            self.settings.base_timeout_ms,
            retention=self.settings.retention,
            metrics=self.metrics,
            on_commit=self._on_commit,
            before_event=lambda: self.app.observe_time(now_ms()),
            ordered=self.order_of,
        )

    async def _heartbeat(self) -> None:
        """Nudge the core often enough that an idle leader proposes on the heartbeat."""
        while True:
            await trio.sleep(self.settings.heartbeat_ms / 4000)
            self.metrics.peers.set(self.host.connected_peers())
            self.metrics.validators.set(self.host.connected_validators())
            if self.driver is not None:
                self.driver.wakeup()

    async def _on_frame(self, protocol: str, sender: int, data: bytes) -> None:
        self.metrics.labelled(self.metrics.messages, _short(protocol)).inc()
        if protocol == CONSENSUS_PROTOCOL:
            if self.driver is not None:
                await self.driver.on_frame(sender, data)
        elif protocol == TX_PROTOCOL:
            self.ingress.on_frame(sender, data)
        elif protocol == SHARES_PROTOCOL:
            self.decryption.on_frame(sender, data)

    # ------------------------------------------------------------ the transaction path

    async def submit(self, data: bytes, client: Hashable = "client") -> Admission:
        return (await self.submit_many([data], client))[0]

    async def submit_many(self, txs: list[bytes], client: Hashable = "client") -> list[Admission]:
        """Admit a client's transactions; ``client`` names its connection (fair checking)."""
        received = time.monotonic()
        verdicts = await self.ingress.submit_many(txs, client)
        for verdict in verdicts:
            if verdict.accepted:
                self._submitted[verdict.digest] = received
        while len(self._submitted) > MAX_TRACKED:
            self._submitted.popitem(last=False)
        return verdicts

    def _admitted(self, digest: bytes, ct: Ciphertext) -> None:
        arrived = now_ms()
        self.app.on_transaction(digest, arrived)
        self._arrivals.arrived(digest, arrived, self._committed_height)
        if self.driver is not None:
            self.driver.wakeup()

    def _was_checked(self, ct: Ciphertext, digest: bytes) -> bool:
        """Checked on admission here (the usual case), else check it now."""
        return ct.namespace in self.genesis.namespaces and (
            self.ingress.was_checked(digest)
            or is_well_formed(self.genesis.threshold_key, self.genesis.chain_id, ct)
        )

    def _payload_of(self, commit: Commit) -> FairPayload:
        """The committed block's payload, decoded once (the app already has it)."""
        held = self.app.last_committed
        if held is not None and held[0] == commit.block_hash:
            return held[1]
        return read_payload(commit.block.payload)

    def order_of(self, commit: Commit) -> tuple[bytes, ...]:
        """The digests a committed block orders (none if its payload does not decode)."""
        try:
            return self._payload_of(commit).order
        except DecodeError:
            return ()

    def _on_commit(self, commit: Commit) -> None:
        order = self.order_of(commit)
        decoded = self.mempool.mark_committed(order)
        self._observe_order(order, commit.block.height)
        now = time.monotonic()
        for digest in order:
            submitted = self._submitted.get(digest)
            ct = decoded.get(digest)  # submitted here, so it was in our mempool
            if submitted is not None and ct is not None:
                latency = self.metrics.labelled(self.metrics.submit_to_commit, ct.namespace)
                latency.observe(now - submitted)
            self._awaiting_decryption.add(digest)
        self.metrics.mempool_size.set(len(self.mempool))
        self.metrics.mempool_bytes.set(self.mempool.size_bytes)
        self.decryption.on_commit(commit, decoded)

    def _observe_order(self, order: Sequence[bytes], height: int) -> None:
        """Inclusion delay and inversions of a committed block, against our arrival log."""
        self._committed_height = height
        view = self._arrivals.committed(order, height)
        for delay in view.delays:
            self.metrics.inclusion_delay.observe(delay)
        if view.pairs:
            self.metrics.pairs.inc(view.pairs)
            self.metrics.inversions.inc(view.inversions)

    def _certified(self, height: int) -> None:
        """Every height up to ``height`` is certified: what was submitted here is served."""
        now = time.monotonic()
        for namespace, submitted in self._certify_clock.certified(height):
            latency = self.metrics.labelled(self.metrics.submit_to_certified, namespace)
            latency.observe(now - submitted)

    def _decrypted(self, batch: DecryptedBatch) -> None:
        now = time.monotonic()
        stamps: list[tuple[str, float]] = []
        for tx in batch.txs:
            self._awaiting_decryption.discard(tx.digest)
            if tx.plaintext is None:
                self.metrics.invalid_transactions.inc()
                continue
            self.metrics.labelled(self.metrics.transactions, tx.namespace).inc()
            submitted = self._submitted.pop(tx.digest, None)
            if submitted is not None:
                latency = self.metrics.labelled(self.metrics.submit_to_decrypt, tx.namespace)
                latency.observe(now - submitted)
                stamps.append((tx.namespace, submitted))
        self._certify_clock.decrypted(batch.height, stamps)
        self.decrypted_height = max(self.decrypted_height, batch.height)
        self.metrics.decrypted_height.set(self.decrypted_height)
        self.attestation.on_decrypted(batch)

    @property
    def certified_height(self) -> int:
        """The highest height with every batch up to it certified by a quorum."""
        return self.attestation.certified_height

    async def wait_certified(self, height: int) -> None:
        """Return once ``certified_height >= height``."""
        await self.attestation.wait_certified(height)

    # ------------------------------------------------------------ reading state (API)

    def status(self) -> dict[str, Any]:
        driver = self.driver
        round_ = driver.core.round if driver else 0
        last = driver.last_commit_at if driver else 0.0
        return {
            "chain_id": self.genesis.chain_id,
            "genesis": self.genesis_fingerprint,
            "index": self.me,
            "height": driver.core.tree.tip.height if driver else 0,
            "decrypted_height": self.decrypted_height,
            "certified_height": self.certified_height,
            "round": round_,
            "view": round_,  # deprecated: the same as "round"; will be removed
            "leader": leader_of(round_, self.committee.n),
            "peers": self.host.connected_peers(),
            "last_commit_age_s": None if not last else round(time.time() - last, 3),
            "mempool": len(self.mempool),
            "syncing": driver is None,
        }

    def transaction_status(self, digest: bytes) -> dict[str, Any]:
        where = self.reader.locate(digest)
        if where is not None:
            height, position = where
            batch = self.reader.batch(height)
            if batch is None:
                return {"digest": digest.hex(), "status": "committed", "height": height}
            tx = batch.txs[position]
            return {
                "digest": digest.hex(),
                "status": "decrypted" if tx.plaintext is not None else "invalid",
                "height": height,
                "position": position,
                "namespace": tx.namespace,
                "plaintext": tx.plaintext.hex() if tx.plaintext is not None else None,
            }
        if digest in self._awaiting_decryption:
            return {"digest": digest.hex(), "status": "committed"}
        if digest in self.mempool:
            return {"digest": digest.hex(), "status": "pending"}
        return {"digest": digest.hex(), "status": "unknown"}


def _short(protocol: str) -> str:
    """``/seqnet/consensus/1`` -> ``consensus`` (the metrics label)."""
    parts = protocol.split("/")
    return parts[2] if len(parts) > 2 else protocol
