"""A chaos scenario: a TOML file of faults on a timeline, read strictly.

An operator writes these by hand, so every mistake is refused with a line that
names the file, the key and what would be right: an unknown key (a typo would
otherwise silently drop a fault), a window outside the run, a node index
outside the committee, two faults on one node at once, a quorum lost in a
scenario that says it must stay live (more than ``f`` down when n = 3f+1), or
never lost in one that expects a stall, and fault kinds that are not built
yet.

    name = "kill-f"
    description = "..."
    nodes = 4                 # validators (default 4)
    duration_s = 45           # the load runs this long (longer if a heal needs it)
    liveness_bound_s = 10     # commits and deliveries resume within this after a heal

    [load]
    rate = 50                 # transactions per second, open loop
    tx_bytes = 128            # plaintext bytes each

    [expect]
    live = true               # false: a quorum is lost (f+1 down), the chain must stall

    [[faults]]
    kind = "kill"             # kill | pause | restart_all (partition, delay_loss, byzantine:
                              # not yet)
    targets = ["f"]           # node indices, or "leader", "f", "f+1" (resolved at run time)
    at_s = 10
    until_s = 25

Symbolic targets are resolved when the fault starts (see ``docs/chaos.md``):
``"f"`` and ``"f+1"`` take that many of the highest-numbered nodes that are up
and named by no other fault overlapping this one; ``"leader"`` takes the
leader of the current round as the live nodes report it in ``/v1/status``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import pathlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sequencer_net.base.committee import max_faulty

MAX_NODES = 64
MAX_TX_BYTES = 64 * 1024  # a node refuses larger submissions long before this
SHORT_DURATION_S = 20.0  # --short: the whole run scaled down to about this
SHORT_MIN_WINDOW_S = 3.0  # --short: a fault window is never shorter than this
SHORT_RATE = 20  # --short: at most this many transactions per second
LEADER, F, F_PLUS_1 = "leader", "f", "f+1"
SYMBOLS = (LEADER, F, F_PLUS_1)
TOP_KEYS = (
    "name",
    "description",
    "nodes",
    "duration_s",
    "liveness_bound_s",
    "load",
    "expect",
    "faults",
)
LOAD_KEYS = ("rate", "tx_bytes")
EXPECT_KEYS = ("live",)
FAULT_KEYS = ("kind", "targets", "at_s", "until_s")


class ScenarioError(ValueError):
    """A scenario that cannot run as written: one line saying where and why."""


class FaultKind(enum.StrEnum):
    """What a fault does to its targets. Only the first three exist yet.

    ``partition``, ``delay_loss`` and ``byzantine`` are reserved, **not yet**
    built: partitions, delay and loss need a fault hook in the transport, and
    Byzantine modes need the node to misbehave on purpose. A scenario naming
    them is refused, never run without them.
    """

    KILL = "kill"  # SIGKILL at at_s; restarted at until_s with the same config and data
    PAUSE = "pause"  # SIGSTOP at at_s, SIGCONT at until_s
    RESTART_ALL = "restart_all"  # SIGKILL every node at at_s, restart them all at until_s
    PARTITION = "partition"  # not yet
    DELAY_LOSS = "delay_loss"  # not yet
    BYZANTINE = "byzantine"  # not yet

    @property
    def supported(self) -> bool:
        return self in (FaultKind.KILL, FaultKind.PAUSE, FaultKind.RESTART_ALL)


SUPPORTED = tuple(k.value for k in FaultKind if k.supported)
NOT_YET = tuple(k.value for k in FaultKind if not k.supported)

Target = int | str  # a node index, or one of SYMBOLS


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault: what, to whom, from ``at_s`` until it is healed at ``until_s``."""

    kind: FaultKind
    targets: tuple[Target, ...]
    at_s: float
    until_s: float

    def width(self, n: int) -> int:
        """How many nodes it takes down once its symbolic targets are resolved."""
        if self.kind is FaultKind.RESTART_ALL:
            return n
        f = max_faulty(n)
        sizes = {LEADER: 1, F: f, F_PLUS_1: f + 1}
        return sum(sizes[t] if isinstance(t, str) else 1 for t in self.targets)

    def overlaps(self, other: Fault) -> bool:
        return self.at_s < other.until_s and other.at_s < self.until_s

    def describe(self) -> str:
        if self.kind is FaultKind.RESTART_ALL:
            who = "every node"
        else:
            who = ", ".join(str(t) for t in self.targets)
        return f"{self.kind.value} {who} {self.at_s:g}-{self.until_s:g} s"


@dataclass(frozen=True, slots=True)
class Load:
    """The steady load offered throughout the run."""

    rate: int = 20
    tx_bytes: int = 128


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    description: str
    duration_s: float
    faults: tuple[Fault, ...]
    nodes: int = 4
    liveness_bound_s: float = 10.0
    load: Load = Load()
    expect_live: bool = True
    source: str = ""  # where it was read from, for messages

    @property
    def f(self) -> int:
        return max_faulty(self.nodes)

    @property
    def quorum(self) -> int:
        return (self.nodes + self.f) // 2 + 1

    @property
    def spare(self) -> int:
        """Nodes that may be down with a quorum still up: n - quorum (f when n = 3f+1)."""
        return self.nodes - self.quorum

    @property
    def run_s(self) -> float:
        """How long the load runs: the duration, or longer so every heal gets its bound."""
        last_heal = max((fault.until_s for fault in self.faults), default=0.0)
        return max(self.duration_s, last_heal + self.liveness_bound_s)

    def most_down(self) -> tuple[int, float]:
        """The most nodes down at once (symbolic targets counted), and from when."""
        return most_down(self.faults, self.nodes)

    def short(self) -> Scenario:
        """The same scenario scaled down for CI (``--short``).

        Every time (the duration, each ``at_s`` and ``until_s``) is multiplied by
        ``SHORT_DURATION_S / duration_s`` when the duration is longer, rounded to
        0.1 s, with each fault window kept at least ``SHORT_MIN_WINDOW_S`` long;
        the load rate is capped at ``SHORT_RATE``. The committee, the transaction
        size, the liveness bound and the expectation stay as written.
        """
        k = min(1.0, SHORT_DURATION_S / self.duration_s)
        faults = []
        for fault in self.faults:
            at = round(fault.at_s * k, 1)
            until = max(round(fault.until_s * k, 1), at + SHORT_MIN_WINDOW_S)
            faults.append(dataclasses.replace(fault, at_s=at, until_s=until))
        duration = max(round(self.duration_s * k, 1), max((f.until_s for f in faults), default=0))
        load = dataclasses.replace(self.load, rate=min(self.load.rate, SHORT_RATE))
        return dataclasses.replace(self, duration_s=duration, faults=tuple(faults), load=load)


def most_down(faults: tuple[Fault, ...], n: int) -> tuple[int, float]:
    """The largest number of nodes down at one moment, and the first moment it happens."""
    best, when = 0, 0.0
    for start in sorted({fault.at_s for fault in faults}):
        down = sum(f.width(n) for f in faults if f.at_s <= start < f.until_s)
        if down > best:
            best, when = down, start
    return best, when


# ------------------------------------------------------------ reading


def load(path: pathlib.Path) -> Scenario:
    """Read and check a scenario file; ScenarioError (one line) on anything wrong."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ScenarioError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{path}: not valid TOML: {exc}") from None
    return parse(data, str(path), default_name=path.stem)


def parse(data: Mapping[str, Any], source: str = "<scenario>", default_name: str = "") -> Scenario:
    """A scenario from a decoded TOML document; ScenarioError names ``source`` and the key."""
    where = _Where(source)
    _known(where, "", data, TOP_KEYS)
    name = _string(where, "name", data.get("name", default_name))
    if not name:
        raise where.error("name", "is required (a short word for reports and file names)")
    if not all(c.isalnum() or c in "-_." for c in name):
        raise where.error("name", f"= {name!r}: use letters, digits, '-', '_' or '.' only")
    description = _string(where, "description", data.get("description", ""))
    nodes = _integer(where, "nodes", data.get("nodes", 4), 1, MAX_NODES)
    if "duration_s" not in data:
        raise where.error("duration_s", "is required (seconds the load runs)")
    duration = _seconds(where, "duration_s", data["duration_s"], positive=True)
    bound = _seconds(where, "liveness_bound_s", data.get("liveness_bound_s", 10.0), positive=True)
    load_ = _load(where, _table(where, "load", data.get("load", {})))
    expect = _table(where, "expect", data.get("expect", {}))
    _known(where, "expect.", expect, EXPECT_KEYS)
    live = expect.get("live", True)
    if not isinstance(live, bool):
        raise where.error("expect.live", f"= {live!r}: must be true or false")
    raw_faults = data.get("faults", [])
    if not isinstance(raw_faults, list) or not all(isinstance(x, dict) for x in raw_faults):
        raise where.error("faults", "must be an array of tables: [[faults]] sections")
    faults = tuple(
        _fault(where, k, raw, nodes, duration) for k, raw in enumerate(raw_faults, start=1)
    )
    scenario = Scenario(
        name=name,
        description=description,
        duration_s=duration,
        faults=faults,
        nodes=nodes,
        liveness_bound_s=bound,
        load=load_,
        expect_live=live,
        source=source,
    )
    check(scenario)
    return scenario


def check(s: Scenario) -> None:
    """What no single key shows: faults that collide, and the expectation against the faults."""
    where = _Where(s.source)
    for i, a in enumerate(s.faults, start=1):
        for j, b in enumerate(s.faults[i:], start=i + 1):
            if not a.overlaps(b):
                continue
            if FaultKind.RESTART_ALL in (a.kind, b.kind):
                raise where.error(
                    f"faults[{j}]",
                    f"({b.describe()}) overlaps faults[{i}] ({a.describe()}); restart_all "
                    "takes every node, so nothing else can run beside it",
                )
            shared = sorted({t for t in a.targets if isinstance(t, int)} & set(b.targets))
            if shared:
                raise where.error(
                    f"faults[{j}]",
                    f"({b.describe()}) targets node {shared[0]}, which faults[{i}] "
                    f"({a.describe()}) already holds then: one fault per node at a time",
                )
    down, when = s.most_down()
    if down > s.nodes:
        raise where.error(
            "faults", f"take {down} nodes down at {when:g} s, but there are only {s.nodes}"
        )
    if s.expect_live and down > s.spare:
        raise where.error(
            "expect.live",
            f"= true, but {down} of {s.nodes} nodes are down at {when:g} s, more than "
            f"{s.spare} (f = {s.f}): a quorum ({s.quorum}) is lost and the chain must stall; "
            "set expect.live = false to check that it stalls without a fork and resumes",
        )
    if not s.expect_live and down <= s.spare:
        raise where.error(
            "expect.live",
            f"= false, but at most {down} of {s.nodes} nodes are ever down: a quorum "
            f"({s.quorum}) stays up, nothing would stall; set expect.live = true",
        )


@dataclass(frozen=True, slots=True)
class _Where:
    source: str

    def error(self, key: str, message: str) -> ScenarioError:
        return ScenarioError(f"{self.source}: {key} {message}")


def _known(where: _Where, prefix: str, table: Mapping[str, Any], keys: tuple[str, ...]) -> None:
    unknown = sorted(set(table) - set(keys))
    if unknown:
        raise where.error(prefix + unknown[0], f"is not a known key here; known: {', '.join(keys)}")


def _table(where: _Where, key: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise where.error(key, f"must be a table ([{key}]), not {value!r}")
    return value


def _string(where: _Where, key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise where.error(key, f"= {value!r}: must be a string")
    return value.strip()


def _integer(where: _Where, key: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise where.error(key, f"= {value!r}: must be a whole number")
    if not lo <= value <= hi:
        raise where.error(key, f"= {value}: must be between {lo} and {hi}")
    return value


def _seconds(where: _Where, key: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(key, f"= {value!r}: must be a number of seconds")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0 or (positive and seconds == 0):
        raise where.error(key, f"= {value}: must be {'above' if positive else 'at least'} 0")
    return seconds


def _load(where: _Where, table: Mapping[str, Any]) -> Load:
    _known(where, "load.", table, LOAD_KEYS)
    default = Load()
    rate = _integer(where, "load.rate", table.get("rate", default.rate), 1, 100_000)
    tx_bytes = _integer(
        where, "load.tx_bytes", table.get("tx_bytes", default.tx_bytes), 1, MAX_TX_BYTES
    )
    return Load(rate, tx_bytes)


def _fault(where: _Where, k: int, raw: Mapping[str, Any], nodes: int, duration: float) -> Fault:
    at = f"faults[{k}]"
    _known(where, f"{at}.", raw, FAULT_KEYS)
    if "kind" not in raw:
        raise where.error(f"{at}.kind", f"is required; one of {', '.join(SUPPORTED)}")
    kind_name = raw["kind"]
    if not isinstance(kind_name, str) or kind_name not in {k.value for k in FaultKind}:
        known = ", ".join(SUPPORTED)
        raise where.error(f"{at}.kind", f"= {kind_name!r} is not a fault kind; known: {known}")
    kind = FaultKind(kind_name)
    if not kind.supported:
        raise where.error(
            f"{at}.kind",
            f"= {kind.value!r} is not supported yet: partitions and delay/loss need the "
            "transport fault hook, Byzantine behaviour needs the node's Byzantine modes, and "
            f"neither exists yet (docs/chaos.md); usable now: {', '.join(SUPPORTED)}",
        )
    for key in ("at_s", "until_s"):
        if key not in raw:
            raise where.error(f"{at}.{key}", "is required (seconds from the start of the load)")
    start = _seconds(where, f"{at}.at_s", raw["at_s"])
    end = _seconds(where, f"{at}.until_s", raw["until_s"])
    if end <= start:
        raise where.error(f"{at}.until_s", f"= {end:g} must be after at_s = {start:g}")
    if end > duration:
        raise where.error(
            f"{at}.until_s", f"= {end:g} is beyond the run: duration_s = {duration:g}"
        )
    targets = _targets(where, at, kind, raw.get("targets"), nodes)
    return Fault(kind, targets, start, end)


def _targets(where: _Where, at: str, kind: FaultKind, value: Any, nodes: int) -> tuple[Target, ...]:
    key = f"{at}.targets"
    if kind is FaultKind.RESTART_ALL:
        if value not in (None, []):
            raise where.error(key, "must be left out: restart_all takes every node")
        return ()
    if value is None:
        raise where.error(key, f"is required: node indices 0..{nodes - 1}, or one of "
                          f"{', '.join(repr(s) for s in SYMBOLS)}")  # fmt: skip
    items = value if isinstance(value, list) else [value]
    if not items:
        raise where.error(key, "is empty: name at least one node")
    out: list[Target] = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise where.error(key, f"holds {item!r}: a node index or {', '.join(SYMBOLS)}")
        if isinstance(item, str) and item not in SYMBOLS:
            raise where.error(key, f"holds {item!r}: the symbolic targets are {', '.join(SYMBOLS)}")
        if isinstance(item, int) and not 0 <= item < nodes:
            raise where.error(
                key, f"holds node {item}, outside the committee: nodes are 0..{nodes - 1}"
            )
        if item in out:
            raise where.error(key, f"names {item!r} twice")
        out.append(item)
    if sum(isinstance(t, str) and t != LEADER for t in out) > 1:
        raise where.error(key, "may hold at most one of 'f' and 'f+1'")
    fault = Fault(kind, tuple(out), 0.0, 1.0)
    if fault.width(nodes) == 0:
        raise where.error(key, f"= {value!r} is no node: f = 0 for {nodes} nodes")
    if fault.width(nodes) > nodes:
        raise where.error(key, f"= {value!r} is {fault.width(nodes)} nodes; there are {nodes}")
    return tuple(out)
