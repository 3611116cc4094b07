"""Connection slots: validators always get in, outsiders never take their room.

Theory of operation
-------------------
py-libp2p 0.8.1 admits inbound TCP connections through one counter of
``max_connections - min_connections`` slots, taken *before* the Noise
handshake; a connection that completes the handshake keeps its slot until the
host stops (its accept task parks on the swarm's lifetime), even after it
closed. So a few dozen raw TCP connections that never speak, plus past
reconnections, fill every slot: a validator's dial is closed unread and the
dialer puts that validator in its 60 s negative cache.

:class:`InboundSlots` replaces that admission (the swarm's
``_handle_inbound_connection``: the one private hook used) with:

* at most ``pending`` connections in the handshake; when full, one is closed
  to make room: the oldest that has sent nothing yet (a raw TCP flood), else
  the oldest. A dialing validator speaks at once, so silent connections never
  displace it, and talking ones would have to arrive ``pending`` at a time
  within its few-millisecond handshake;
* once Noise has proved the peer id: a validator always stays; any other peer
  only while fewer than ``outsiders`` such connections are open (the newest is
  refused);
* a slot is held exactly as long as its connection lives.

The swarm's own ``max_connections`` is set far above these (see
``p2p.host.connection_limits``) so it never refuses first. Outbound,
:func:`forget_failed_dial` lifts py-libp2p's 60 s negative cache before every
dial to a validator. Being full is "busy", not guilt: evictions and refusals
are counted here (``evicted``, ``refused``), not as rejections of a peer.
"""

from __future__ import annotations

import itertools
import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from libp2p.network.connection.raw_connection import RawConnection
from libp2p.peer.id import ID
from multiaddr import Multiaddr

log = logging.getLogger("seqnet.p2p.slots")

MAX_PENDING = 64  # connections in the Noise/yamux handshake at once
MAX_OUTSIDERS = 32  # authenticated connections from peers outside the committee


class InboundSlots:
    """Admission of inbound connections for one swarm (see the module docstring)."""

    def __init__(
        self,
        swarm: Any,
        is_validator: Callable[[ID], bool],
        *,
        pending: int = MAX_PENDING,
        outsiders: int = MAX_OUTSIDERS,
        on_shed: Callable[[str], None] = lambda reason: None,
    ) -> None:
        """``on_shed`` hears of each connection closed to make room ("evicted",
        "outsider-full"), e.g. for a metric."""
        self._swarm, self._is_validator, self._on_shed = swarm, is_validator, on_shed
        self.max_pending, self.max_outsiders = pending, outsiders
        self._pending: OrderedDict[int, _Watched] = OrderedDict()  # oldest first
        self._tickets = itertools.count()
        self.outsiders = 0
        self.evicted = 0  # unauthenticated connections closed to make room
        self.refused = 0  # authenticated outsiders refused: outsider slots full

    def install(self) -> None:
        """Route the swarm's inbound connections through :meth:`accept`."""
        self._swarm._handle_inbound_connection = self.accept

    async def accept(self, stream: Any, listen_addr: Multiaddr) -> None:
        """Serve one inbound TCP connection for as long as it lives.

        The listener closes the socket when this returns, so it returns only
        once the connection is refused or closed.
        """
        muxed = await self._authenticate(stream, listen_addr)
        if muxed is None:
            return
        if self._is_validator(muxed.peer_id):
            await _until_closed(muxed)
        elif self.outsiders >= self.max_outsiders:
            self.refused += 1
            self._on_shed("outsider-full")
            log.info("refused %s: %d outsider slots full", muxed.peer_id, self.max_outsiders)
            await _close_quietly(muxed)
        else:
            self.outsiders += 1
            try:
                await _until_closed(muxed)
            finally:
                self.outsiders -= 1

    async def _authenticate(self, stream: Any, listen_addr: Multiaddr) -> Any | None:
        """Noise + yamux inside a pending slot: the muxed connection, or None."""
        ticket, raw = next(self._tickets), _Watched(stream, False)
        evicted = self._make_room()  # no await between the check and taking the slot
        self._pending[ticket] = raw
        try:
            if evicted is not None:
                await _close_quietly(evicted)  # its own task sees the close and gives up
            return await self._swarm.upgrade_inbound_raw_conn(raw, listen_addr)
        except Exception as exc:  # silent, evicted, bad handshake: all end the same way
            log.debug("inbound handshake failed: %s", exc)
            return None
        finally:
            self._pending.pop(ticket, None)

    def _make_room(self) -> _Watched | None:
        """When every pending slot is taken, free one: the oldest silent, else the oldest."""
        if len(self._pending) < self.max_pending:
            return None
        silent = (t for t, raw in self._pending.items() if not raw.spoke)
        ticket = next(silent, next(iter(self._pending)))
        self.evicted += 1
        self._on_shed("evicted")
        return self._pending.pop(ticket)


class _Watched(RawConnection):
    """A raw inbound connection that remembers whether the peer has sent anything."""

    spoke = False

    async def read(self, n: int | None = None) -> bytes:
        data = await super().read(n)
        self.spoke = self.spoke or bool(data)
        return data


def forget_failed_dial(network: Any, peer_id: ID) -> None:
    """Lift py-libp2p's 60 s negative cache for ``peer_id`` (a validator).

    A dial that failed while the validator was restarting, or while its slots
    were flooded, must not keep us away once it is reachable again.
    """
    network.unblock_peer(peer_id)


async def _until_closed(muxed: Any) -> None:
    await muxed.event_closed.wait()


async def _close_quietly(closable: Any) -> None:
    try:
        await closable.close()
    except Exception as exc:  # already closed or reset: nothing left to free
        log.debug("close failed: %s", exc)
