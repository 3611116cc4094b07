"""What every example rollup shares: strict JSON transactions, the state root, the runner.

A rollup here is a pure function ``transition(state, plaintext) -> new state``,
or None when the transaction is skipped. The runner subscribes to the
rollup's namespace (``sequencer_net.client.subscribe``: every height in
order, each batch verified from the genesis), applies each batch's
transactions in consensus order and prints one line per height:
``height H root <hex>``, where the root is the SHA-256 of the state's
canonical JSON. Two honest runs over the same heights print the same roots,
whichever nodes they read from.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import logging
import pathlib
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import trio

from sequencer_net.client import ClientError, Subscription
from sequencer_net.node.genesis import GenesisError, load_genesis
from sequencer_net.node.network import NetworkFilesError, members

S = TypeVar("S", bound=Mapping[str, Any])

MAX_TX_BYTES = 1024  # a longer transaction is skipped (and its JSON never parsed)
DEFAULT_CLUSTER_DIR = pathlib.Path(".seqnet/cluster")  # where `seqnet cluster up` writes


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8: one encoding per state."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def state_root(state: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the whole state, hex."""
    return hashlib.sha256(canonical_json(state)).hexdigest()


def json_object(plaintext: bytes | None) -> dict[str, Any] | None:
    """The JSON object a transaction holds, or None (invalid leaf, too long, not UTF-8,
    not JSON, duplicate keys, NaN/Infinity, or not an object)."""
    if plaintext is None or len(plaintext) > MAX_TX_BYTES:
        return None
    try:
        value = json.loads(
            plaintext.decode("utf-8"), object_pairs_hook=_unique, parse_constant=_refuse
        )
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        raise ValueError("duplicate key")
    return out


def _refuse(constant: str) -> Any:
    raise ValueError(f"{constant} is not a number")


def text(value: Any) -> bool:
    """A non-empty string."""
    return isinstance(value, str) and value != ""


def whole(value: Any) -> bool:
    """An integer (JSON true/false are not)."""
    return isinstance(value, int) and not isinstance(value, bool)


Transition = Callable[[S, bytes | None], S | None]


@dataclass(frozen=True, slots=True)
class Step(Generic[S]):
    """The state after one height, and how many of its transactions applied or were skipped."""

    state: S
    applied: int
    skipped: int


def apply_batch(transition: Transition[S], state: S, plaintexts: Iterable[bytes | None]) -> Step[S]:
    """Every transaction of one batch in order; a skipped one leaves the state as it was."""
    applied = skipped = 0
    for plaintext in plaintexts:
        after = transition(state, plaintext)
        if after is None:
            skipped += 1
        else:
            state, applied = after, applied + 1
    return Step(state, applied, skipped)


@dataclass(frozen=True, slots=True)
class Report:
    """One line of a rollup's output."""

    height: int
    root: str
    applied: int
    skipped: int

    def line(self, as_json: bool) -> str:
        """``height H root <hex>``, or ``{"height", "root", "applied", "skipped"}``."""
        if as_json:
            return json.dumps(dataclasses.asdict(self))
        return f"height {self.height} root {self.root}"


@dataclass(frozen=True, slots=True)
class Rollup(Generic[S]):
    """An example rollup: its name, its genesis state and its transition function."""

    name: str
    initial: S
    transition: Transition[S]


async def follow(
    rollup: Rollup[S], sub: Subscription, emit: Callable[[Report], None], count: int | None = None
) -> S:
    """Apply each verified batch of ``sub`` as it comes; ``emit`` a report per height.

    Returns the state after ``count`` heights (runs until cancelled without one).
    """
    state, seen = rollup.initial, 0
    async with sub.batches() as batches:
        async for batch in batches:
            step = apply_batch(rollup.transition, state, (leaf.plaintext for leaf in batch.leaves))
            state, seen = step.state, seen + 1
            emit(Report(batch.height, state_root(state), step.applied, step.skipped))
            if seen == count:
                break
    return state


def replay(
    rollup: Rollup[S], directory: pathlib.Path, namespace: str, count: int, from_height: int = 1
) -> list[Report]:
    """``count`` heights of ``namespace`` from every node of a cluster directory: the reports."""
    genesis = load_genesis(directory / "genesis.json")
    nodes = [member.api for member in members(directory)]
    reports: list[Report] = []
    sub = Subscription(genesis, namespace, from_height, nodes)
    trio.run(follow, rollup, sub, reports.append, count)
    return reports


def main(rollup: Rollup[S], argv: Sequence[str] | None = None) -> int:
    """The example's command line: ``--rollup NAME --from H [--node ...] [--dir ...]``."""
    args = _parser(rollup.name).parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"{rollup.name}: %(message)s")
    try:
        genesis = load_genesis(args.genesis or args.dir / "genesis.json")
        nodes = args.node or [member.api for member in members(args.dir)]
        sub = Subscription(genesis, args.rollup, args.from_height, nodes, carrier=args.carrier)
        trio.run(follow, rollup, sub, lambda r: print(r.line(args.json), flush=True), args.count)
    except (ValueError, GenesisError, NetworkFilesError, ClientError) as exc:
        print(f"{rollup.name}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


def _parser(name: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python -m examples.{name}",
        description=f"The {name.replace('_', ' ')} example rollup: follows ROLLUP's certified "
        "batches (each verified from the genesis) and prints the state root after each height.",
    )
    p.add_argument("--rollup", required=True, help="the namespace this rollup reads")
    p.add_argument("--from", dest="from_height", type=_positive, default=1, help="first height (1)")
    p.add_argument(
        "--node",
        action="append",
        default=None,
        metavar="HOST:PORT",
        help="a node's API address, repeatable (default: every node of --dir)",
    )
    p.add_argument("--dir", type=pathlib.Path, default=DEFAULT_CLUSTER_DIR, help="cluster dir")
    p.add_argument("--genesis", type=pathlib.Path, default=None, help="genesis.json (with --node)")
    p.add_argument("--json", action="store_true", help="one JSON object per height")
    p.add_argument("--count", type=_positive, default=None, help="stop after N heights")
    p.add_argument("--carrier", choices=["websocket", "http"], default="websocket")
    return p


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number
