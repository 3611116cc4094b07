"""The consensus core: chained two-chain HotStuff (Jolteon / DiemBFT v4), sans I/O.

Theory of operation
-------------------
Round ``r`` has one leader (round-robin). It proposes a block extending the
highest QC it knows, justified by a QC for ``r-1`` or by a TC for ``r-1``.
Replicas vote (see ``safety``) and send the vote to the leader of ``r+1``, who
gathers a quorum into a QC, enters ``r+1`` and proposes on top of it. A block
commits when it and its child are certified in consecutive rounds (the
two-chain rule); committing delivers every uncommitted ancestor in height order.

If a round stalls, each node's timer fires, it signs a timeout carrying its
highest QC; ``f+1`` timeouts make the others join early, ``2f+1`` form a TC that
moves everyone to the next round. Certificates ride along in every proposal and
timeout, so a node that fell behind catches up from whatever it hears next, and
fetches missing blocks with ``BlockRequest``.

The core reads no clock, does no I/O and has no randomness: ``handle(event)``
returns the actions for the driver. Every signature it makes is preceded by a
``Persist`` of the safety state.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from ordering.blocktree import RETENTION, BlockLookup, BlockTree, CommittedTip
from ordering.collectors import TimeoutCollector, VoteCollector
from ordering.events import (
    Action,
    BlocksReceived,
    BlocksRequested,
    Broadcast,
    Commit,
    CommitWitness,
    Event,
    Ignored,
    Persist,
    ProposalReceived,
    Rejected,
    ResetTimer,
    Send,
    TimeoutReceived,
    TimerFired,
    VerifiedProposal,
    VerifiedTimeout,
    VoteReceived,
    Wakeup,
)
from ordering.leader import leader_of
from ordering.messages import (
    Block,
    BlockRequest,
    BlockResponse,
    Proposal,
    ProposalData,
    QuorumCert,
    Timeout,
    TimeoutCert,
    TimeoutData,
    Vote,
    VoteData,
    block_hash,
    genesis_qc,
)
from ordering.pacemaker import Pacemaker, PacemakerConfig
from ordering.safety import SafetyState, after_timeout, after_vote, is_safe_to_vote, with_high_qc
from ordering.sync import BlockFetcher, serve
from sequencer_net.base.committee import Committee
from sequencer_net.base.signing import SigningKey, Verified


class PayloadApp(Protocol):
    """What goes inside blocks: filled by the mempool and fair-ordering layers.

    ``ancestors`` looks up uncommitted blocks by hash (None once committed), so
    the app can see what the branch it builds on already contains.
    """

    def propose_payload(
        self, parent_hash: bytes, height: int, round_: int, ancestors: BlockLookup
    ) -> bytes | None:
        """Bytes for the leader's next block on top of ``parent_hash``, or None if not ready.

        The core asks again whenever a report arrives while this node leads.
        """
        ...

    def validate_payload(self, block: Block, digest: bytes, ancestors: BlockLookup) -> bool:
        """False makes honest replicas refuse to vote for ``block``."""
        ...

    def make_report(self, round_: int, timeout: bool) -> bytes:
        """Opaque data that rides on this node's vote or timeout for ``round_``."""
        ...

    def on_report(self, signer: int, data: bytes) -> None:
        """Data another validator attached to its vote or timeout."""
        ...

    def on_commit(self, block: Block, digest: bytes) -> None:
        """``block`` is final; called once per block in height order."""
        ...


@dataclass(frozen=True, slots=True)
class CoreConfig:
    pacemaker: PacemakerConfig = field(default_factory=PacemakerConfig)
    future_round_window: int = 1000
    retention: int = RETENTION


@dataclass(frozen=True, slots=True)
class Restored:
    """What a restarting node reloads from disk."""

    safety: SafetyState
    tip: CommittedTip
    blocks: tuple[tuple[bytes, Block], ...] = ()  # voted for, above the tip, by height

    @classmethod
    def from_disk(
        cls,
        chain_id: str,
        safety: SafetyState | None,
        tip: CommittedTip,
        blocks: tuple[tuple[bytes, Block], ...] = (),
    ) -> Restored | None:
        """None for a node that never persisted anything; else its state (a node may
        have committed blocks before it ever signed, so a missing safety state means
        "voted nowhere, knows only the genesis QC")."""
        if safety is None and tip.height == 0:
            return None
        return cls(safety or SafetyState(0, genesis_qc(chain_id)), tip, blocks)


class ConsensusCore:
    """One validator's consensus state machine."""

    def __init__(
        self,
        committee: Committee,
        me: int,
        key: SigningKey,
        app: PayloadApp,
        config: CoreConfig | None = None,
        restored: Restored | None = None,
        committed_blocks: BlockLookup | None = None,
    ) -> None:
        """``committed_blocks`` finds committed blocks by hash in the driver's store, so
        peers can be served blocks this core no longer holds in memory."""
        self.committee, self.me, self._key, self._app = committee, me, key, app
        self._committed_blocks = committed_blocks
        self.config = config or CoreConfig()
        chain_id = committee.chain_id
        if restored is None:
            restored = Restored(SafetyState(0, genesis_qc(chain_id)), BlockTree(chain_id).tip)
        self.safety = restored.safety
        self._persisted = restored.safety
        self.tree = BlockTree(chain_id, restored.tip, self.config.retention)
        for digest, block in restored.blocks:
            if block.height > restored.tip.height:
                self.tree.insert(digest, block)
        self._persisted_block = b""
        start = max(restored.safety.high_qc.round, restored.tip.round) + 1
        self.pacemaker = Pacemaker(self.config.pacemaker, round=start)
        self.last_tc: TimeoutCert | None = None
        self.last_tc_cause = ""  # what this node saw of last_tc's round (see _failure_cause)
        self._votes = VoteCollector(committee.quorum)
        self._timeouts = TimeoutCollector(committee.quorum)
        self._timed_out_round = 0
        self._first_proposal: dict[int, bytes] = {}  # round -> first block proposed in it
        self._last_vote: Verified[VoteData] | None = None
        self._pending_proposal: tuple[int, VerifiedProposal] | None = None
        self._pending_commit: QuorumCert | None = None
        self._fetcher = BlockFetcher(me, committee.n)
        self._out: list[Action] = []

    @property
    def round(self) -> int:
        return self.pacemaker.round

    # ------------------------------------------------------------ public API

    def start(self) -> list[Action]:
        """Arm the first timer and, if leading, propose."""
        self._emit(ResetTimer(self.round, self.pacemaker.timeout_ms))
        if leader_of(self.round, self.committee.n) == self.me:
            self._propose()
        return self._drain()

    def handle(self, event: Event) -> list[Action]:
        """Apply one verified event; return what the driver must do, in order."""
        match event:
            case ProposalReceived(sender, proposal):
                self._on_proposal(sender, proposal)
            case VoteReceived(sender, vote, report):
                self._on_report(vote.signer, report)
                self._on_vote(sender, vote)
            case TimeoutReceived(sender, timeout):
                self._on_report(timeout.timeout.signer, timeout.report)
                self._on_timeout(sender, timeout)
            case BlocksRequested(sender, request):
                self._on_block_request(sender, request)
            case BlocksReceived(sender, response):
                self._on_blocks(sender, response)
            case TimerFired(round_):
                self._on_timer(round_)
            case Wakeup():
                if leader_of(self.round, self.committee.n) == self.me:
                    self._propose()
        return self._drain()

    # ------------------------------------------------------------ proposals

    def _on_proposal(self, sender: int, p: VerifiedProposal) -> None:
        self._on_certificates(sender, p.block.parent_qc, p.last_round_tc)
        if p.block_hash in self.tree:
            return None
        if not self._is_first_proposal(p):
            return self._reject(sender, "proposal-equivocation", f"round {p.block.round}")
        parent = p.block.parent_qc.block_hash
        if p.block.round < self.round:  # late: keep the block, it may get certified
            if self.tree.is_connected(parent) and self._validate_payload(p):
                self.tree.insert(p.block_hash, p.block)
                self._resume_after_sync()
            return None
        if p.block.round > self.round:
            return self._ignore(sender, "proposal-future-round", f"round {p.block.round}")
        if not self.tree.is_connected(parent):
            self._pending_proposal = (sender, p)
            return self._request_missing(parent, sender)
        return self._vote_for(sender, p)

    def _vote_for(self, sender: int, p: VerifiedProposal) -> None:
        block = p.block
        if not self._validate_payload(p):
            return self._reject(sender, "proposal-invalid-payload", p.block_hash.hex())
        self.tree.insert(p.block_hash, block)
        if not is_safe_to_vote(self.safety, block.round, block.parent_qc, p.last_round_tc):
            return self._ignore(sender, "proposal-unsafe", f"round {block.round}")
        self.safety = after_vote(self.safety, block.round)
        self._send_vote(VoteData(p.block_hash, block.round, block.height))
        return None

    def _send_vote(self, data: VoteData) -> None:
        chain_id = self.committee.chain_id
        vote = self._key.sign_own(data, chain_id, self.me)
        self._last_vote = vote
        self._persist(data.block_hash)
        next_leader = leader_of(data.round + 1, self.committee.n)
        if next_leader == self.me:
            self._on_vote(self.me, vote)
        else:
            report = self._app.make_report(data.round, timeout=False)
            self._emit(Send(next_leader, Vote(vote.unchecked(), report)))

    def _propose(self) -> None:
        round_, qc = self.round, self.safety.high_qc
        tc = None
        if qc.round + 1 != round_:
            if self.last_tc is None or self.last_tc.round + 1 != round_:
                return  # no certificate justifies this round yet
            tc = self.last_tc
        if not self.tree.is_connected(qc.block_hash):
            return self._request_missing(qc.block_hash, self._fetcher.next_peer())
        if round_ <= self.safety.highest_voted_round:
            return None  # already voted or timed out here (e.g. before a restart)
        payload = self._app.propose_payload(qc.block_hash, qc.height + 1, round_, self.tree.get)
        if payload is None:
            return None  # the app is not ready (e.g. too few reports): retried on the next one
        block = Block(qc.height + 1, round_, self.me, qc, payload)
        digest = block_hash(block)
        signed = self._key.sign(ProposalData(round_, digest), self.committee.chain_id, self.me)
        self.tree.insert(digest, block)
        self.safety = after_vote(self.safety, round_)
        self._persist(digest)  # proposing is voting: never propose twice in a round
        self._emit(Broadcast(Proposal(block, tc, signed)))
        self._send_vote(VoteData(digest, round_, block.height))
        return None

    # ------------------------------------------------------------ votes

    def _on_vote(self, sender: int, vote: Verified[VoteData]) -> None:
        round_ = vote.statement.round
        if leader_of(round_ + 1, self.committee.n) != self.me:
            return self._reject(sender, "vote-wrong-leader", f"for round {round_ + 1}")
        if not self._is_in_window(round_ + 1):
            return None
        return self._collect_vote(sender, vote)

    def _collect_vote(self, sender: int, vote: Verified[VoteData]) -> None:
        qc, equivocated = self._votes.add(vote)
        if equivocated:
            self._reject(sender, "vote-equivocation", f"{vote.signer} in {vote.statement.round}")
        if qc is not None:
            self._on_qc(sender, qc)
        return None

    # ------------------------------------------------------------ timeouts

    def _on_timer(self, round_: int) -> None:
        if round_ != self.round:
            return
        self._emit(ResetTimer(self.round, self.pacemaker.timeout_ms))
        self._local_timeout()
        self._retry_sync()

    def _local_timeout(self) -> None:
        round_, high_qc = self.round, self.safety.high_qc
        self.safety = after_timeout(self.safety, round_)
        self._timed_out_round = round_
        signed = self._key.sign_own(
            TimeoutData(round_, high_qc.round), self.committee.chain_id, self.me
        )
        self._persist()
        vote = (
            self._last_vote
            if self._last_vote and self._last_vote.statement.round == round_
            else None
        )
        attached = None if vote is None else vote.unchecked()
        report = self._app.make_report(round_, timeout=True)
        self._emit(Broadcast(Timeout(signed.unchecked(), high_qc, self.last_tc, attached, report)))
        if vote is not None:
            self._collect_vote(self.me, vote)
        self._count_timeout(round_, self.me, signed.signature, high_qc)

    def _on_timeout(self, sender: int, t: VerifiedTimeout) -> None:
        self._on_certificates(sender, t.high_qc, t.last_round_tc)
        round_ = t.timeout.statement.round
        if round_ < self.round or not self._is_in_window(round_):
            return
        if t.vote is not None:
            self._collect_vote(sender, t.vote)  # salvage the round if its next leader is down
        self._count_timeout(round_, t.timeout.signer, t.timeout.signature, t.high_qc)

    def _count_timeout(self, round_: int, signer: int, signature: bytes, qc: QuorumCert) -> None:
        self._timeouts.add(round_, signer, signature, qc)
        joins = self._timeouts.count(round_) >= self.committee.validity
        if round_ == self.round and joins and self._timed_out_round < round_:
            self._local_timeout()  # f+1 gave up: at least one honest node did, so join
            return
        tc = self._timeouts.take_certificate(round_)
        if tc is not None:
            self._on_tc(tc)

    # ------------------------------------------------------------ certificates

    def _on_certificates(self, sender: int, qc: QuorumCert, tc: TimeoutCert | None) -> None:
        if tc is not None:
            self._on_tc(tc, sender)
        self._on_qc(sender, qc)

    def _on_tc(self, tc: TimeoutCert, sender: int | None = None) -> None:
        self._on_qc(self.me if sender is None else sender, tc.high_qc)
        if self.last_tc is None or tc.round > self.last_tc.round:
            self.last_tc = tc
            self.last_tc_cause = self._failure_cause(tc.round)
        self._enter_round(tc.round + 1, after_timeout=True)

    def _failure_cause(self, round_: int) -> str:
        """What this node saw of a round that timed out (for operators, not for safety)."""
        if self._last_vote is not None and self._last_vote.statement.round == round_:
            return "no-quorum"  # we voted; too few others did in time
        if round_ in self._first_proposal:
            return "not-voted"  # a proposal came; we refused it, or it was late or unsafe
        return "no-proposal"

    def _on_qc(self, sender: int, qc: QuorumCert) -> None:
        self.safety = with_high_qc(self.safety, qc)
        self._try_commit(sender, qc)
        self._enter_round(qc.round + 1, after_timeout=False)

    def _enter_round(self, round_: int, *, after_timeout: bool) -> None:
        if not self.pacemaker.enter(round_, after_timeout=after_timeout):
            return
        self._emit(ResetTimer(round_, self.pacemaker.timeout_ms))
        self._votes.prune(round_ - 1)
        self._timeouts.prune(round_)
        self._first_proposal = {r: d for r, d in self._first_proposal.items() if r >= round_ - 2}
        self._pending_proposal = None
        if leader_of(round_, self.committee.n) == self.me:
            self._propose()

    # ------------------------------------------------------------ commit

    def _try_commit(self, sender: int, qc: QuorumCert) -> None:
        """Two-chain rule: if ``qc``'s block directly follows its parent's round, commit it."""
        if qc.height - 1 <= self.tree.tip.height:
            return
        child = self.tree.get(qc.block_hash)
        if child is None or not self.tree.is_connected(qc.block_hash):
            self._remember_pending_commit(qc)
            return self._request_missing(qc.block_hash, sender)
        if child.parent_qc.round + 1 != child.round:
            return None
        path = self.tree.path_to_commit(child.parent_qc.block_hash)
        assert path is not None, "connected child implies a connected parent"
        certificates = [block.parent_qc for _, block in path[1:]] + [child.parent_qc]
        for (digest, block), certificate in zip(path, certificates, strict=True):
            self._app.on_commit(block, digest)
            self.tree.mark_committed(digest, block)
            self._emit(Commit(block, digest, certificate))
        if path:
            self._emit(CommitWitness(child, qc.block_hash, qc))
        return None

    def _remember_pending_commit(self, qc: QuorumCert) -> None:
        if self._pending_commit is None or qc.round > self._pending_commit.round:
            self._pending_commit = qc

    # ------------------------------------------------------------ sync

    def _request_missing(self, digest: bytes, peer: int) -> None:
        request = self._fetcher.request(self.tree, digest, peer, self.round)
        if request is not None:
            self._emit(Send(*request))

    def _retry_sync(self) -> None:
        for digest in sorted(self._fetcher.wanted):
            self._request_missing(digest, self._fetcher.next_peer())

    def _on_block_request(self, sender: int, request: BlockRequest) -> None:
        response = serve(self.tree, request, self._committed_blocks)
        if response is not None:
            self._emit(Send(sender, response))

    def _on_blocks(self, sender: int, response: BlockResponse) -> None:
        verdict, still_missing = self._fetcher.accept(self.tree, response)
        if verdict == "unrequested":
            return self._ignore(sender, "blocks-unrequested", "late, or never asked for")
        if verdict == "broken-chain":
            return self._reject(sender, "blocks-broken-chain", "a block is not its child's parent")
        if still_missing is not None:
            self._request_missing(still_missing, sender)
        self._resume_after_sync()
        return None

    def _resume_after_sync(self) -> None:
        self._fetcher.forget_known(self.tree)
        if self._pending_commit is not None:
            qc, self._pending_commit = self._pending_commit, None
            self._try_commit(self.me, qc)
        pending = self._pending_proposal
        if pending is not None and self._is_ready(pending[1]):
            self._pending_proposal = None
            self._vote_for(*pending)
        if leader_of(self.round, self.committee.n) == self.me:
            self._propose()

    # ------------------------------------------------------------ helpers

    def _validate_payload(self, p: VerifiedProposal) -> bool:
        return self._app.validate_payload(p.block, p.block_hash, self.tree.get)

    def _on_report(self, signer: int, report: bytes) -> None:
        if not report:
            return
        self._app.on_report(signer, report)
        if leader_of(self.round, self.committee.n) == self.me:
            self._propose()  # a proposal the app was not ready for may be possible now

    def _is_first_proposal(self, p: VerifiedProposal) -> bool:
        """Keep one block per round from proposals; a certified other one is fetched by sync."""
        return self._first_proposal.setdefault(p.block.round, p.block_hash) == p.block_hash

    def _is_ready(self, p: VerifiedProposal) -> bool:
        """A held-back proposal can be voted on: still current, ancestors all known."""
        return p.block.round == self.round and self.tree.is_connected(p.block.parent_qc.block_hash)

    def _is_in_window(self, round_: int) -> bool:
        return round_ <= self.round + self.config.future_round_window

    def _persist(self, voted: bytes | None = None) -> None:
        """Ask for the safety state (and the block just voted for) to be made durable."""
        block = self.tree.get(voted) if voted and voted != self._persisted_block else None
        if self.safety != self._persisted or block is not None:
            self._persisted = self.safety
            blocks: tuple[tuple[bytes, Block], ...] = ()
            if voted is not None and block is not None:
                self._persisted_block = voted
                blocks = ((voted, block),)
            self._emit(Persist(self.safety, blocks))

    def _reject(self, sender: int, reason: str, detail: str) -> None:
        """The sender broke a protocol rule (provably: it signed what it sent)."""
        self._emit(Rejected(sender, reason, detail))

    def _ignore(self, sender: int, reason: str, detail: str) -> None:
        """Not acted on, though the sender may be honest: never held against it."""
        self._emit(Ignored(sender, reason, detail))

    def _emit(self, action: Action) -> None:
        self._out.append(action)

    def _drain(self) -> list[Action]:
        out, self._out = self._out, []
        return out
