"""Nodes with different genesis files never exchange a frame (real libp2p on 127.0.0.1).

Each host binds a genesis digest into a hello that opens every stream; a
validator whose genesis differs (same keys, another threshold or parameter)
is refused on every protocol, by both ends, and counted as
``genesis-mismatch`` in ``on_reject``.
"""

from __future__ import annotations

from collections import Counter

from mev import group
from p2p.framing import frame
from p2p.host import CONSENSUS_PROTOCOL, SHARES_PROTOCOL, SYNC_PROTOCOL, TX_PROTOCOL
from sequencer_net.node import genesis as gen
from tests.test_p2p import cluster, wait_for

GENESIS, _ = gen.create(4, random_bytes=group.seeded_random_bytes(b"binding-tests"))
EDITED = gen.Genesis(
    GENESIS.chain_id,
    GENESIS.validators,
    GENESIS.threshold_key,
    GENESIS.namespaces,
    {"base_timeout_ms": 500},  # self-consistent, but not the network's genesis
)


def test_any_change_to_the_genesis_changes_its_digest() -> None:
    assert gen.digest(EDITED) != gen.digest(GENESIS)
    assert gen.digest(gen.Genesis.from_json(GENESIS.to_json())) == gen.digest(GENESIS)
    assert gen.fingerprint(GENESIS) == gen.digest(GENESIS).hex()[:16]


async def test_a_validator_with_another_genesis_is_refused_on_every_protocol() -> None:
    counted: Counter[tuple[str, str]] = Counter()
    ids = [gen.digest(GENESIS), gen.digest(EDITED)]
    on_reject = lambda protocol, why: counted.update([(protocol, why)])  # noqa: E731
    async with cluster(2, ids, on_reject, _serve) as (hosts, inbox):
        for protocol in (CONSENSUS_PROTOCOL, TX_PROTOCOL, SHARES_PROTOCOL):
            assert not await hosts[0].send(1, b"vote", protocol)
            assert not await hosts[1].send(0, b"vote", protocol)
        assert await hosts[0].request(1, b"blocks?") is None
        await wait_for(lambda: hosts[0].rejected["genesis-mismatch"] >= 7)
        await wait_for(lambda: hosts[1].rejected["genesis-mismatch"] >= 7)
        assert inbox == [[], []]
    for protocol in (CONSENSUS_PROTOCOL, TX_PROTOCOL, SHARES_PROTOCOL):
        assert counted[(protocol, "genesis-mismatch")] >= 4  # both ends, both directions
    assert counted[(SYNC_PROTOCOL, "genesis-mismatch")] >= 2  # both ends


async def test_validators_with_the_same_genesis_exchange_frames() -> None:
    async with cluster(2, [gen.digest(GENESIS)] * 2) as (hosts, inbox):
        assert await hosts[0].send(1, b"vote")
        assert await hosts[1].send(0, b"vote back", TX_PROTOCOL)
        await wait_for(lambda: inbox == [[(1, b"vote back")], [(0, b"vote")]])
        assert sum(h.rejected["genesis-mismatch"] for h in hosts) == 0


async def test_a_stream_that_skips_the_hello_is_refused() -> None:
    """A peer that speaks frames straight away (an old or foreign build) is not heard."""
    async with cluster(2, [gen.digest(GENESIS)] * 2) as (hosts, inbox):
        stream = await hosts[1]._new_stream(0, CONSENSUS_PROTOCOL)  # no hello
        await stream.write(frame(b"vote without hello"))
        await wait_for(lambda: hosts[0].rejected["genesis-mismatch"] == 1)
        assert inbox[0] == []


async def test_a_sync_request_across_genesis_files_gets_no_answer() -> None:
    ids = [gen.digest(GENESIS), gen.digest(EDITED)]
    async with cluster(2, ids, serve_sync=_serve) as (hosts, _):
        assert await hosts[0].request(1, b"blocks?") is None
        await wait_for(lambda: hosts[1].rejected["genesis-mismatch"] == 1)
    async with cluster(2, [ids[0]] * 2, serve_sync=_serve) as (hosts, _):
        assert await hosts[0].request(1, b"blocks?") == b"blocks!"


async def _serve(request: bytes) -> bytes:
    return b"blocks!"
