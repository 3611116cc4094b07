"""A simulated validator: the real decode → validate → core path, with a fake disk.

The wrapper does what the trio driver does — decode bytes strictly, validate,
feed the core, carry out its actions — so the simulator exercises the same code
a real node runs. The disk survives crashes; everything else is rebuilt.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from ordering.blocktree import BlockLookup, CommittedTip
from ordering.core import CoreConfig, PayloadApp, Restored
from ordering.events import Action, Commit, Event, Ignored, Persist, Rejected
from ordering.messages import CONSENSUS, Block, ConsensusMessage, genesis_hash
from ordering.pacemaker import PacemakerConfig
from ordering.recovery import recover_core
from ordering.safety import SafetyState
from ordering.validation import Invalid, MessageValidator
from sequencer_net.base import codec
from sequencer_net.base.codec import DecodeError
from sequencer_net.base.committee import Committee
from sequencer_net.base.signing import SigningKey


class LabelPayload:
    """A payload app for the simulator: blocks carry who proposed them and where."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.committed = 0

    def propose_payload(
        self, parent_hash: bytes, height: int, round_: int, ancestors: BlockLookup
    ) -> bytes:
        return codec.dumps_plain([self.label, height, round_])

    def validate_payload(self, block: Block, digest: bytes, ancestors: BlockLookup) -> bool:
        return block.payload != b"invalid"

    def make_report(self, round_: int, timeout: bool) -> bytes:
        return b""

    def on_report(self, signer: int, data: bytes) -> None:
        return None

    def on_commit(self, block: Block, digest: bytes) -> None:
        self.committed += 1


@dataclass
class Disk:
    """What survives a crash: the last persisted safety state and the committed log."""

    chain_id: str
    safety: SafetyState | None = None
    log: list[Commit] = field(default_factory=list)
    voted: dict[bytes, Block] = field(default_factory=dict)
    by_hash: dict[bytes, Block] = field(default_factory=dict)  # the committed log, by hash

    def restored(self) -> Restored | None:
        tip = CommittedTip(genesis_hash(self.chain_id), 0, 0)
        if self.log:
            last = self.log[-1]
            tip = CommittedTip(last.block_hash, last.block.height, last.block.round)
        voted = sorted(self.voted.items(), key=lambda item: item[1].height)
        return Restored.from_disk(self.chain_id, self.safety, tip, tuple(voted))

    def block(self, digest: bytes) -> Block | None:
        return self.by_hash.get(digest)

    def last_commits(self, count: int) -> list[Commit]:
        return self.log[-count:]


class SimNode:
    """One running validator instance (a twin is a second instance, same index)."""

    def __init__(
        self,
        committee: Committee,
        index: int,
        seed: bytes,
        label: str,
        disk: Disk,
        base_timeout_ms: int,
        make_app: Callable[[SigningKey], PayloadApp] | None = None,
    ) -> None:
        self.index, self.label, self.disk = index, label, disk
        self.key = SigningKey(seed)
        self.app: PayloadApp = LabelPayload(label) if make_app is None else make_app(self.key)
        self.validator = MessageValidator(committee)
        config = CoreConfig(pacemaker=PacemakerConfig(base_timeout_ms=base_timeout_ms))
        self.core = recover_core(committee, index, self.key, self.app, config, disk)
        self.rejected: Counter[str] = Counter()

    def receive(self, sender: int, data: bytes) -> list[Action]:
        """Decode, validate and handle one message; count and drop what is bad."""
        try:
            message: ConsensusMessage = CONSENSUS.decode(data)
        except DecodeError:
            self.rejected["decode"] += 1
            return []
        return self.handle_message(sender, message)

    def handle_message(self, sender: int, message: ConsensusMessage) -> list[Action]:
        try:
            event = self.validator.to_event(sender, message)
        except Invalid as exc:
            self.rejected[exc.reason] += 1
            return []
        return self.handle(event)

    def handle(self, event: Event) -> list[Action]:
        actions = self.core.handle(event)
        for a in actions:
            if isinstance(a, Rejected | Ignored):  # the report counts both, by reason
                self.rejected[a.reason] += 1
        return actions

    def apply_durable(self, action: Action) -> None:
        """Carry out the disk part of an action (the engine does the network part)."""
        if isinstance(action, Persist):
            self.disk.safety = action.state
            self.disk.voted.update(action.blocks)
        elif isinstance(action, Commit):
            self.disk.log.append(action)
            self.disk.by_hash[action.block_hash] = action.block
            height = action.block.height
            self.disk.voted = {d: b for d, b in self.disk.voted.items() if b.height > height}
