"""Running one validator process: load config, genesis and keys; run; stop on a signal."""

from __future__ import annotations

import gc
import logging
import signal
import sys
from typing import Any

import trio

from sequencer_net.node.byzantine import Misbehaviour
from sequencer_net.node.config import NodeConfig
from sequencer_net.node.genesis import fingerprint, load_genesis, load_keys
from sequencer_net.node.logs import event
from sequencer_net.node.storage import Store
from sequencer_net.node.validator import Settings, Validator

log = logging.getLogger("seqnet.run")
PROGRESS_EVERY_S = 5.0
# Crypto runs in worker threads; at Python's default 5 ms GIL switch interval the
# event loop waited up to 5 ms each time it needed the GIL back from one of them.
GIL_SWITCH_S = 0.0005
# Decoding a block allocates thousands of small containers; at the default gen-0
# threshold (700) the collector ran every few hundred transactions and its older
# generations walked the whole heap: ~8 % of a node's CPU under load (py-spy).
GC_THRESHOLDS = (50_000, 20, 20)


async def run_node(config: NodeConfig, new_node: bool = False) -> None:
    """Run until SIGINT or SIGTERM; raises GenesisError/StorageError/ValueError on bad setup.

    ``new_node``: the operator says this validator never ran (see ``Validator``).
    """
    sys.setswitchinterval(GIL_SWITCH_S)
    genesis = load_genesis(config.genesis)
    keys = load_keys(config.keys)
    keys.check_against(genesis)
    store = Store(config.database, genesis.chain_id)
    settings = Settings(
        policy=config.policy,
        base_timeout_ms=config.base_timeout_ms,
        heartbeat_ms=config.heartbeat_ms,
        listen=config.listen,
        api=config.api,
        metrics=config.metrics,
        new_node=new_node,
        **_test_network_settings(config),
    )
    validator = Validator(genesis, keys, store, settings)
    event(
        log,
        "starting",
        index=keys.index,
        chain=genesis.chain_id,
        genesis=fingerprint(genesis),
        height=store.committed_tip().height,
        listen=config.listen or genesis.validators[keys.index].address,
    )
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(validator.run)
            gc.freeze()  # what startup built lives as long as the node: never scan it again
            gc.set_threshold(*GC_THRESHOLDS)
            event(
                log,
                "running",
                height=store.committed_tip().height,
                api=validator.api_address,
                metrics=validator.metrics_address,
            )
            nursery.start_soon(_report_progress, validator)
            async for signum in signals:
                event(log, "stopping", signal=signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break
    validator.close()


async def _report_progress(validator: Validator) -> None:
    while True:
        await trio.sleep(PROGRESS_EVERY_S)
        status = validator.status()
        event(
            log,
            "progress",
            round=status["round"],
            height=status["height"],
            decrypted=status["decrypted_height"],
            mempool=status["mempool"],
            peers=status["peers"],
        )


def _test_network_settings(config: NodeConfig) -> dict[str, Any]:
    """The admin endpoint's token and the misbehaviour, read and checked (raises ValueError)."""
    misbehaviour = (
        None if config.misbehaviour is None else Misbehaviour.from_json(config.misbehaviour)
    )
    token = ""
    if config.admin_token_file is not None:
        try:
            token = config.admin_token_file.read_text().strip()
        except OSError as exc:
            raise ValueError(
                f"admin_token_file {config.admin_token_file}: {exc.strerror}"
            ) from None
        if len(token) < 32:
            raise ValueError(f"admin_token_file {config.admin_token_file}: under 32 characters")
    return {"admin": config.admin, "admin_token": token, "misbehaviour": misbehaviour}
