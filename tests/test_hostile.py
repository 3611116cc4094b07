"""Hostile peers against three real validator processes: refused, counted, harmless.

Validator 3's key is held by a rogue inside the test: it sends garbage and
forged consensus messages, bad transaction batches and share batches in
another validator's name. A libp2p peer outside the genesis tries to speak the
consensus protocol. The three honest processes must count every one of these
in ``seqnet_messages_rejected_total`` (read by a real Prometheus-format scrape
of ``/metrics``) and keep committing.
"""

from __future__ import annotations

import os
import pathlib
import urllib.request

import trio
from prometheus_client.parser import text_string_to_metric_families

from mev.shares import ShareBatch
from ordering.messages import CONSENSUS, Vote, VoteData
from p2p.host import CONSENSUS_PROTOCOL, SHARES_PROTOCOL, TX_PROTOCOL, ValidatorHost
from sequencer_net.base.signing import SigningKey
from sequencer_net.node.genesis import digest, load_keys
from sequencer_net.node.wire import SHARES, TX, TxBatch
from tests.cluster import Processes, wait_until


def scrape_refusals(address: str) -> dict[str, dict[tuple[str, str], float]]:
    """``{"rejected": {(protocol, reason): n}, "ignored": {...}}`` from a real scrape."""
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as response:
        text = response.read().decode()
    out: dict[str, dict[tuple[str, str], float]] = {"rejected": {}, "ignored": {}}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            for kind in out:
                if sample.name == f"seqnet_messages_{kind}_total":
                    labels = (sample.labels["protocol"], sample.labels["reason"])
                    out[kind][labels] = sample.value
    return out


async def attack(c: Processes, rogue: ValidatorHost, outsider: ValidatorHost) -> None:
    chain = c.genesis.chain_id
    forged = SigningKey(os.urandom(32)).sign(VoteData(bytes(32), 5, 5), chain, 3)
    for target in range(3):
        for _ in range(5):
            assert await rogue.send(target, b"\xffnot cbor at all", CONSENSUS_PROTOCOL)
            assert await rogue.send(target, CONSENSUS.encode(Vote(forged)), CONSENSUS_PROTOCOL)
            assert await rogue.send(target, TX.encode(TxBatch((b"junk",))), TX_PROTOCOL)
            assert await rogue.send(target, b"\x82\x01", TX_PROTOCOL)
            fake = ShareBatch(0, bytes(32), (), bytes(32), bytes(32))  # in validator 0's name
            assert await rogue.send(target, SHARES.encode(fake), SHARES_PROTOCOL)
        await outsider.send(target, b"let me vote", CONSENSUS_PROTOCOL)


async def test_hostile_validator_and_outsider_are_refused_and_counted(
    tmp_path: pathlib.Path,
) -> None:
    c = Processes(tmp_path)
    for i in range(3):
        c.start(i)
    rogue_keys = load_keys(tmp_path / "node-3.key.json")
    peers = [(v.peer_id, v.address) for v in c.genesis.validators]
    rogue = ValidatorHost(
        rogue_keys.signing_key.seed, 3, peers, _ignore, genesis_id=digest(c.genesis)
    )
    outsider = ValidatorHost(os.urandom(32), 4, peers, _ignore, listen="/ip4/127.0.0.1/tcp/0")
    try:
        async with rogue.running(), outsider.running():
            await trio.to_thread.run_sync(lambda: wait_until(lambda: c.height(0) >= 3, 60))
            before = min(c.height(i) for i in range(3))
            await attack(c, rogue, outsider)
            await trio.to_thread.run_sync(
                lambda: wait_until(lambda: min(c.height(i) for i in range(3)) >= before + 5, 60)
            )
            scraped = [scrape_refusals(m.metrics) for m in c.members[:3]]
    finally:
        codes = c.stop_all()
    assert codes == [0, 0, 0]
    forged = {
        ("consensus", "decode"): 5,
        ("consensus", "bad-signature"): 5,
        ("tx", "decode"): 5,
        ("shares", "wrong-sender"): 5,
        ("consensus", "not-a-validator"): 1,
    }
    for refused in scraped:
        for labels, at_least in forged.items():
            assert refused["rejected"][labels] >= at_least  # held against the sender
            assert labels not in refused["ignored"]  # and never excused as a race
    stores = [c.store(i) for i in range(3)]
    height = min(s.committed_tip().height for s in stores)
    chains = [[x.block_hash for x in s.commits(1, height)] for s in stores]
    assert all(chain == chains[0] for chain in chains)


async def _ignore(protocol: str, sender: int, data: bytes) -> None:
    return None
