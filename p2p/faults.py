"""Faults put on purpose into a validator's outgoing links (test networks only).

Why: chaos tests need partitions, loss and delay between validators that are
real processes, switched on and off while they run, on machines without netem.
Each rule applies to the frames this node sends to one peer (or to every peer)
on one protocol (or on every protocol): ``cut`` drops them all, ``loss`` drops
each with that probability, ``delay_ms`` holds each that long (frames of one
link stay in order and do not wait for each other: a slow link, not a stalled
one). A dropped frame is lost as on a bad network: the sender is told it left.
Cutting both directions between two nodes takes a rule on each of them.

The most specific rule wins: (peer, protocol), then peer, then protocol, then
the rule for everything.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import trio

SendFrame = Callable[[int, bytes, str], Awaitable[bool]]
PROTOCOLS = ("consensus", "tx", "shares", "sync")  # the short names rules may name
MAX_DELAY_MS = 60_000
MAX_RULES = 256
MAX_HELD = 100_000  # frames held by delays at once; beyond it they are dropped


def full_name(protocol: str) -> str:
    """``consensus`` -> ``/seqnet/consensus/1`` (the protocol id frames are sent on)."""
    return f"/seqnet/{protocol}/1"


class BadFault(ValueError):
    """A fault rule that cannot be applied (the message says which field and why)."""


@dataclass(frozen=True, slots=True)
class LinkFault:
    peer: int | None = None  # None: every peer
    protocol: str | None = None  # a short name (``PROTOCOLS``); None: every protocol
    cut: bool = False
    loss: float = 0.0  # probability that a frame is dropped
    delay_ms: int = 0

    @classmethod
    def from_json(cls, doc: Any, n: int) -> LinkFault:
        """A rule from its JSON form, checked against a committee of ``n``."""
        if not isinstance(doc, dict):
            raise BadFault("a rule is a JSON object")
        unknown = sorted(set(doc) - {"peer", "protocol", "cut", "loss", "delay_ms"})
        if unknown:
            raise BadFault(f"unknown field(s) {', '.join(unknown)}")
        peer, protocol = doc.get("peer"), doc.get("protocol")
        if peer is not None and (type(peer) is not int or not 0 <= peer < n):
            raise BadFault(f"peer: expected a validator index 0..{n - 1} or null")
        if protocol is not None and protocol not in PROTOCOLS:
            raise BadFault(f"protocol: expected one of {', '.join(PROTOCOLS)} or null")
        cut, loss, delay = doc.get("cut", False), doc.get("loss", 0.0), doc.get("delay_ms", 0)
        if type(cut) is not bool:
            raise BadFault("cut: expected true or false")
        if type(loss) not in (int, float) or not 0.0 <= loss <= 1.0:
            raise BadFault("loss: expected a probability from 0 to 1")
        if type(delay) is not int or not 0 <= delay <= MAX_DELAY_MS:
            raise BadFault(f"delay_ms: expected an integer from 0 to {MAX_DELAY_MS}")
        return cls(peer, protocol, cut, float(loss), delay)

    def to_json(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "protocol": self.protocol,
            "cut": self.cut,
            "loss": self.loss,
            "delay_ms": self.delay_ms,
        }


class FaultyLinks:
    """Sends through ``send``, except where a rule drops or delays the frame."""

    def __init__(self, send: SendFrame, rng: random.Random | None = None) -> None:
        self._send, self._rng = send, rng or random.Random()
        self._rules: dict[tuple[int | None, str | None], LinkFault] = {}
        self._held: list[tuple[float, int, int, bytes, str]] = []  # (due, seq, to, data, proto)
        self._seq = itertools.count()
        self._more = trio.Event()
        self.dropped = 0

    @property
    def faults(self) -> list[LinkFault]:
        return list(self._rules.values())

    def set(self, faults: Sequence[LinkFault]) -> None:
        """Replace every rule (an empty list heals every link)."""
        if len(faults) > MAX_RULES:
            raise BadFault(f"at most {MAX_RULES} rules")
        self._rules = {(f.peer, f.protocol and full_name(f.protocol)): f for f in faults}

    def rule_for(self, peer: int, protocol: str) -> LinkFault | None:
        """The rule for frames to ``peer`` on ``protocol`` (a full protocol id)."""
        for key in ((peer, protocol), (peer, None), (None, protocol), (None, None)):
            rule = self._rules.get(key)
            if rule is not None:
                return rule
        return None

    def drops(self, peer: int, protocol: str) -> bool:
        """Whether this frame is lost (cut, or unlucky under loss)."""
        rule = self.rule_for(peer, protocol)
        return rule is not None and (rule.cut or self._rng.random() < rule.loss)

    async def send(self, to: int, payload: bytes, protocol: str) -> bool:
        rule = self.rule_for(to, protocol)
        if rule is None:
            return await self._send(to, payload, protocol)
        if rule.cut or self._rng.random() < rule.loss or len(self._held) >= MAX_HELD:
            self.dropped += 1
            return True  # lost on the way, as far as the sender can tell
        if rule.delay_ms == 0:
            return await self._send(to, payload, protocol)
        due = trio.current_time() + rule.delay_ms / 1000
        heapq.heappush(self._held, (due, next(self._seq), to, payload, protocol))
        self._more.set()
        return True

    async def run(self) -> None:
        """Release delayed frames when they are due (runs while the host runs)."""
        while True:
            if not self._held:
                self._more = trio.Event()
                await self._more.wait()
                continue
            due = self._held[0][0]
            if due > trio.current_time():
                with trio.move_on_at(due):
                    self._more = trio.Event()
                    await self._more.wait()  # an earlier frame may come in meanwhile
                continue
            _, _, to, payload, protocol = heapq.heappop(self._held)
            await self._send(to, payload, protocol)
