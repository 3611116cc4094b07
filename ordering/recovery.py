"""Starting a validator's core again from what survived on its disk.

The node (SQLite) and the simulator (an in-memory disk that survives crashes)
restart a validator through this one function, so the steps cannot drift
apart: replay the last committed blocks into the payload app (so it knows
what is final and refuses to order it again), then build the core from the
persisted safety state, the committed tip and the blocks it voted for.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ordering.core import ConsensusCore, CoreConfig, PayloadApp, Restored
from ordering.events import Commit
from ordering.messages import Block
from sequencer_net.base.committee import Committee
from sequencer_net.base.signing import SigningKey

# Committed blocks replayed into a restarted payload app, so it knows what is final.
APP_REPLAY_COMMITS = 256


class DurableLog(Protocol):
    """What a validator's disk gives back after a crash."""

    def restored(self) -> Restored | None:
        """The safety state, committed tip and voted blocks; None if it never persisted."""
        ...

    def block(self, digest: bytes) -> Block | None:
        """A committed block by hash (to serve peers blocks no longer in memory)."""
        ...

    def last_commits(self, count: int) -> Sequence[Commit]:
        """The last ``count`` commits, oldest first."""
        ...


def recover_core(
    committee: Committee,
    me: int,
    key: SigningKey,
    app: PayloadApp,
    config: CoreConfig,
    disk: DurableLog,
) -> ConsensusCore:
    """Replay recent commits into ``app``, then build the core from ``disk``."""
    for commit in disk.last_commits(APP_REPLAY_COMMITS):
        app.on_commit(commit.block, commit.block_hash)
    return ConsensusCore(committee, me, key, app, config, disk.restored(), disk.block)
