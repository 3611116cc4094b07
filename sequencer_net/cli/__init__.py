"""The ``seqnet`` command line: one module per command.

The node's own commands and the user's live here (``keygen``, ``node``,
``encrypt``, ``submit``, ``subscribe``). Operator tooling (``cluster``,
``bench``, ``sim``) lives in ``ops`` and registers itself through the
``seqnet.commands`` entry point group, so nothing here imports ``ops``. Every
failure is one clear line on stderr and a non-zero exit; long commands show
progress on stderr and print results on stdout.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib.metadata import entry_points

from sequencer_net import __version__
from sequencer_net.cli import encrypt, keygen, node, submit, subscribe
from sequencer_net.cli.args import CliError
from sequencer_net.node import logs

COMMAND_GROUP = "seqnet.commands"  # entry points: name = "module:add"


def _add_registered(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Commands other packages register (``ops``: cluster, bench, sim)."""
    for command in sorted(entry_points(group=COMMAND_GROUP), key=lambda e: e.name):
        command.load()(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="seqnet",
        description="seqnet: a decentralized shared sequencer (BFT fair ordering of "
        "threshold-encrypted transactions for many rollups).",
    )
    parser.add_argument("--version", action="version", version=f"seqnet {__version__}")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument("--log-format", default="text", choices=["text", "json"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in (keygen, node, encrypt, submit, subscribe):
        command.add(sub)
    _add_registered(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    logs.configure(args.log_level, args.log_format)
    try:
        return int(args.func(args))
    except CliError as exc:
        print(f"seqnet: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("seqnet: interrupted", file=sys.stderr)
        return 130


__all__ = ["CliError", "build_parser", "main"]
