"""Helpers for tests that run validators for real on 127.0.0.1."""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Callable

import trio

from mev import kem
from sequencer_net import codec
from sequencer_net.genesis import Genesis


def free_base_port(count: int, spacing: tuple[int, ...] = (0,)) -> int:
    """A base port with ``count`` free consecutive ports at each offset in ``spacing``."""
    for _ in range(100):
        base = random.randrange(20_000, 38_000)
        try:
            for offset in spacing:
                for port in range(base + offset, base + offset + count):
                    with socket.socket() as s:
                        s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError("no free ports")


def encrypted(genesis: Genesis, namespace: str, payload: bytes) -> bytes:
    """A client's transaction: ``payload`` threshold-encrypted for ``namespace``."""
    ct = kem.encrypt(genesis.threshold_key, genesis.chain_id, namespace, payload, os.urandom)
    return codec.encode(ct)


async def until(condition: Callable[[], bool], seconds: float = 30.0) -> None:
    with trio.fail_after(seconds):
        while not condition():  # noqa: ASYNC110 - polls progress
            await trio.sleep(0.05)


HOSTILE_REASONS = ("decode", "signature", "not-a-validator", "wrong-sender", "bad-share")


def rejections(registry: object) -> dict[tuple[str, str], float]:
    """``seqnet_messages_rejected`` by (protocol, reason), from a node's registry."""
    out: dict[tuple[str, str], float] = {}
    for family in registry.collect():  # type: ignore[attr-defined]
        if family.name != "seqnet_messages_rejected":
            continue
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.value:
                out[(sample.labels["protocol"], sample.labels["reason"])] = sample.value
    return out


def hostile(registry: object) -> dict[tuple[str, str], float]:
    """Rejections that mean malformed or forged input (not protocol races like a late vote)."""
    return {
        key: value
        for key, value in rejections(registry).items()
        if any(word in key[1] for word in HOSTILE_REASONS)
    }
