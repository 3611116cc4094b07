"""``seqnet node``: run one validator until SIGINT or SIGTERM; setup failures are one line."""

from __future__ import annotations

import argparse
import pathlib

from sequencer_net.cli.args import CliError


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "node",
        help="run one validator",
        description="Run one validator from a TOML config (genesis, key file, database); "
        "stops cleanly on SIGINT or SIGTERM. `seqnet keygen` writes one config per validator.",
    )
    p.add_argument("--config", type=pathlib.Path, required=True, help="path to node-<i>.toml")
    p.add_argument(
        "--new-node",
        action="store_true",
        help="this validator never ran: start even though its database is missing or empty "
        "while peers have committed (without it, such a start is refused: the safety state "
        "that prevents a double vote may have been lost)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import trio

    from sequencer_net.node.config import ConfigError, NodeConfig
    from sequencer_net.node.genesis import GenesisError
    from sequencer_net.node.run import run_node
    from sequencer_net.node.storage import StorageError

    expected = (ConfigError, GenesisError, StorageError, ValueError, OSError)
    try:
        config = NodeConfig.load(args.config)
        trio.run(run_node, config, args.new_node)
    except expected as exc:
        raise CliError(str(exc)) from None
    except BaseExceptionGroup as group:  # raised inside one of the node's tasks
        first = _first_leaf(group)
        if isinstance(first, expected):
            raise CliError(str(first)) from None
        raise
    return 0


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    inner = group.exceptions[0]
    return _first_leaf(inner) if isinstance(inner, BaseExceptionGroup) else inner
