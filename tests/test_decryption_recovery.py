"""A running validator that lost the shares of a block holding an unopenable ciphertext.

Four validators in one process over real libp2p. Validator 3 loses every share
frame while a block is committed that holds a ciphertext with a valid signature
and a payload that opens to nothing (its key check fits no key). Peers' stored
keys cannot prove that verdict, so without its shares it cannot move on; once
frames flow again it asks its peers to send their shares for that block again,
combines them like the others did and agrees: invalid. No restart involved.
"""

from __future__ import annotations

import pathlib

import trio

from mev import kem
from sequencer_net.base import codec
from sequencer_net.node.genesis import create
from sequencer_net.node.storage import Store
from sequencer_net.node.validator import Settings, Validator
from sequencer_net.node.wire import SHARES, ShareRequest
from tests.cluster import encrypted, free_base_port, ignored, until
from tests.cluster import unopenable as unopenable_ciphertext


def verdict(v: Validator, data: bytes) -> str:
    digest = kem.digest(codec.decode(kem.Ciphertext, data))
    return str(v.transaction_status(digest)["status"])


async def test_a_validator_that_lost_the_shares_asks_again_and_agrees_it_is_invalid(
    tmp_path: pathlib.Path,
) -> None:
    chain_id = "lost-shares"
    genesis, keys = create(4, chain_id=chain_id, base_port=free_base_port(4))
    settings = Settings(base_timeout_ms=500, heartbeat_ms=50, new_node=True)
    validators = [
        Validator(genesis, k, Store(tmp_path / f"node-{k.index}.db", chain_id), settings)
        for k in keys
    ]
    lagging = validators[3]
    unopenable = unopenable_ciphertext(genesis, "rollup-a")
    honest = encrypted(genesis, "rollup-b", b"after it")
    async with trio.open_nursery() as nursery:
        for v in validators:
            await nursery.start(v.run)
        await until(lambda: lagging.store.committed_tip().height >= 3)
        receive = lagging.decryption.on_frame
        lagging.decryption.on_frame = lambda sender, data: None  # type: ignore[method-assign]
        assert all(x.accepted for x in await validators[0].submit_many([unopenable, honest]))
        await until(lambda: verdict(validators[0], unopenable) == "invalid", 30)
        await until(lambda: verdict(validators[0], honest) == "decrypted", 30)
        await trio.sleep(2.5)  # peers' keys were tried and proved nothing
        assert verdict(lagging, unopenable) == "committed"
        lagging.decryption.on_frame = receive  # type: ignore[method-assign]
        await until(lambda: verdict(lagging, unopenable) == "invalid", 30)
        await until(lambda: verdict(lagging, honest) == "decrypted", 30)
        asked = validators[0]  # a request for a block it never committed gets nothing
        asked.decryption.on_frame(1, SHARES.encode(ShareRequest(10**9, bytes(32))))
        await until(lambda: ("shares", "unknown-block") in ignored(asked.metrics.registry))
        nursery.cancel_scope.cancel()
    served = sum(v.metrics.served.labels("shares")._value.get() for v in validators[:3])
    assert served >= 2  # t - 1 = 1 peer share needed; every peer that heard the request answers
    height = min(v.store.decrypted_tip() for v in validators)
    logs = [v.store.batches(1, height) for v in validators]
    assert all(log == logs[0] for log in logs)
