"""What every ``seqnet`` command shares: the one-line error and argument types."""

from __future__ import annotations

import argparse
import pathlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sequencer_net.node.genesis import Genesis

DEFAULT_CLUSTER_DIR = pathlib.Path(".seqnet/cluster")


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 2."""


def int_list(text: str, lo: int, hi: int, what: str, example: str) -> tuple[int, ...]:
    try:
        values = tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what} like {example}, got {text!r}") from None
    if not values or any(v < lo or v > hi for v in values):
        raise argparse.ArgumentTypeError(f"{what} must be between {lo} and {hi}")
    return values


def node_sizes(text: str) -> tuple[int, ...]:
    return int_list(text, 1, 64, "committee sizes", "4,7,10")


def rates(text: str) -> tuple[int, ...]:
    return int_list(text, 1, 1_000_000, "rates", "25,50")


def whole(text: str, *, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < minimum:
        raise argparse.ArgumentTypeError(f"must be at least {minimum}")
    return value


def byzantine(text: str) -> int | None:
    """A count of Byzantine nodes, or 'f' (None): the most each committee tolerates."""
    return None if text == "f" else whole(text, minimum=0)


def positive(text: str) -> int:
    return whole(text, minimum=1)


def write_network(directory: pathlib.Path, nodes: int, **options: Any) -> Genesis:
    """``node.network.write_network``, its failure as one CLI line."""
    from sequencer_net.node.network import NetworkFilesError
    from sequencer_net.node.network import write_network as write

    try:
        return write(directory, nodes, **options)
    except NetworkFilesError as exc:
        raise CliError(str(exc)) from None
