"""A chaos scenario: a TOML file of faults on a timeline, read strictly.

An operator writes these by hand, so every mistake is refused with a line that
names the file, the key and what would be right: an unknown key (a typo would
otherwise silently drop a fault), a key that belongs to another kind of fault,
a window outside the run, a node index outside the committee, two faults on
one node at once, a quorum lost in a scenario that says it must stay live
(more than ``f`` down when n = 3f+1), or never lost in one that expects a
stall, and more than ``f`` Byzantine validators in one that says it must stay
safe.

    name = "kill-f"
    description = "..."
    nodes = 4                 # validators (default 4)
    duration_s = 45           # the load runs this long (longer if a heal needs it)
    liveness_bound_s = 10     # commits and deliveries resume within this after a heal
    broken = {node = 3, build = "reorder_batches"}   # optional: start node 3 broken

    [load]
    rate = 50                 # transactions per second, open loop
    tx_bytes = 128            # plaintext bytes each

    [expect]
    live = true               # false: a quorum is lost (f+1 down), the chain must stall
    safe = true               # false: beyond the fault model (> f Byzantine, a broken build)

    [[faults]]
    kind = "kill"             # kill | pause | restart_all | partition | delay_loss | byzantine
    targets = ["f"]           # node indices, or "leader", "f", "f+1" (resolved at run time)
    at_s = 10
    until_s = 25

    [[faults]]                # the other kinds' own keys
    kind = "partition"
    groups = [["leader"]]     # node indices or "leader"; the nodes no group names form one more
    [[faults]]
    kind = "delay_loss"       # on the targets' outgoing links (default: every node)
    loss = 0.2                # probability that a frame is dropped
    delay_ms = 30             # each frame held this long
    protocol = "consensus"    # optional: consensus, tx, shares, sync (default: all)
    [[faults]]
    kind = "byzantine"
    behaviour = "censor"      # withhold_shares, corrupt_shares, censor, equivocate,
    namespace = "rollup-b"    # lie_reports, garbage; namespace: for censor only

Symbolic targets are resolved when the fault starts (see ``docs/chaos.md``):
``"f"`` and ``"f+1"`` take that many of the highest-numbered nodes that are up
and named by no other fault overlapping this one; ``"leader"`` takes the
leader of the current round as the live nodes report it in ``/v1/status``.
Partitions, delay and loss and Byzantine behaviour go through the validators'
admin endpoints, which only a test network has (``seqnet keygen
--test-network``).
"""

from __future__ import annotations

import dataclasses
import enum
import math
import pathlib
import tomllib
from collections.abc import Callable, Mapping
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
    "broken",
    "load",
    "expect",
    "faults",
)
LOAD_KEYS = ("rate", "tx_bytes")
EXPECT_KEYS = ("live", "safe")
BROKEN_KEYS = ("node", "build")
BUILDS = ("reorder_batches",)  # the node's deliberately broken builds (config, at start)
COMMON_KEYS = ("kind", "at_s", "until_s")
KIND_KEYS = {  # what each kind takes beside COMMON_KEYS
    "kill": ("targets",),
    "pause": ("targets",),
    "restart_all": ("targets",),
    "partition": ("groups",),
    "delay_loss": ("targets", "loss", "delay_ms", "protocol"),
    "byzantine": ("targets", "behaviour", "namespace"),
}
FAULT_KEYS = tuple(dict.fromkeys(COMMON_KEYS + sum(KIND_KEYS.values(), ())))
BEHAVIOURS = ("withhold_shares", "corrupt_shares", "censor", "equivocate", "lie_reports", "garbage")
PROTOCOLS = ("consensus", "tx", "shares", "sync")  # what a delay_loss rule may be limited to
MAX_DELAY_MS = 60_000


class ScenarioError(ValueError):
    """A scenario that cannot run as written: one line saying where and why."""


class FaultKind(enum.StrEnum):
    """What a fault does to its targets.

    The first three act on processes (signals); the last three go through each
    validator's admin endpoint, which only a test network has: link rules on
    the frames a node sends (``p2p/faults.py``) and Byzantine behaviour
    (``sequencer_net/node/byzantine.py``).
    """

    KILL = "kill"  # SIGKILL at at_s; restarted at until_s with the same config and data
    PAUSE = "pause"  # SIGSTOP at at_s, SIGCONT at until_s
    RESTART_ALL = "restart_all"  # SIGKILL every node at at_s, restart them all at until_s
    PARTITION = "partition"  # links between groups cut both ways; healed at until_s
    DELAY_LOSS = "delay_loss"  # the targets' outgoing frames dropped and held; healed
    BYZANTINE = "byzantine"  # the targets misbehave; honest again at until_s

    @property
    def on_processes(self) -> bool:
        """Signals to processes (no admin endpoint needed)."""
        return self in (FaultKind.KILL, FaultKind.PAUSE, FaultKind.RESTART_ALL)

    @property
    def on_links(self) -> bool:
        """Link rules: every node's rules are replaced, so one such fault at a time."""
        return self in (FaultKind.PARTITION, FaultKind.DELAY_LOSS)

    @property
    def takes_down(self) -> bool:
        """Its nodes count as down for the quorum (a partition: the side cut off)."""
        return self.on_processes or self is FaultKind.PARTITION


SUPPORTED = tuple(k.value for k in FaultKind)
ADMIN_KINDS = tuple(k for k in FaultKind if not k.on_processes)

Target = int | str  # a node index, or one of SYMBOLS


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault: what, to whom, from ``at_s`` until it is healed at ``until_s``."""

    kind: FaultKind
    targets: tuple[Target, ...]  # delay_loss: empty = every node; partition: empty
    at_s: float
    until_s: float
    groups: tuple[tuple[Target, ...], ...] = ()  # partition: as written (not the rest)
    rest: bool = False  # partition: the nodes no group names form one more side
    loss: float = 0.0  # delay_loss
    delay_ms: int = 0  # delay_loss
    protocol: str | None = None  # delay_loss: only frames of this protocol
    behaviour: str = ""  # byzantine: one of BEHAVIOURS
    namespace: str | None = None  # byzantine censor: the namespace left out

    def count(self, n: int) -> int:
        """How many nodes its targets name once the symbols are resolved."""
        if self.kind is FaultKind.RESTART_ALL or (
            self.kind is FaultKind.DELAY_LOSS and not self.targets
        ):
            return n
        f = max_faulty(n)
        sizes = {LEADER: 1, F: f, F_PLUS_1: f + 1}
        return sum(sizes[t] if isinstance(t, str) else 1 for t in self.targets)

    def group_sizes(self, n: int) -> list[int]:
        """A partition's group sizes, the nodes no group names as one more group."""
        sizes = [len(g) for g in self.groups]
        rest = n - sum(sizes)
        return [*sizes, rest] if rest > 0 else sizes

    def width(self, n: int) -> int:
        """How many nodes it takes down (for a partition: every side but the largest)."""
        if self.kind is FaultKind.PARTITION:
            return n - max(self.group_sizes(n))
        return self.count(n) if self.kind.takes_down else 0

    def byzantine(self, n: int) -> int:
        """How many validators it makes Byzantine."""
        return self.count(n) if self.kind is FaultKind.BYZANTINE else 0

    def overlaps(self, other: Fault) -> bool:
        return self.at_s < other.until_s and other.at_s < self.until_s

    def who(self) -> str:
        """Its targets as written: ``f``, ``2, 3``, ``leader | rest``."""
        if self.kind is FaultKind.RESTART_ALL:
            return "every node"
        if self.kind is FaultKind.PARTITION:
            sides = [",".join(map(str, g)) for g in self.groups]
            return " | ".join([*sides, "rest"] if self.rest else sides)
        if not self.targets:
            return "every node"
        return ", ".join(str(t) for t in self.targets)

    def what(self) -> str:
        """Its settings: ``loss 20%, delay 30 ms``, ``censor rollup-b``; empty for most."""
        if self.kind is FaultKind.DELAY_LOSS:
            parts = [f"loss {self.loss:.0%}"] if self.loss else []
            parts += [f"delay {self.delay_ms} ms"] if self.delay_ms else []
            parts += [f"{self.protocol} only"] if self.protocol else []
            return ", ".join(parts)
        if self.kind is FaultKind.BYZANTINE:
            return f"{self.behaviour} {self.namespace}" if self.namespace else self.behaviour
        return ""

    def describe(self) -> str:
        what = f" ({self.what()})" if self.what() else ""
        return f"{self.kind.value} {self.who()}{what} {self.at_s:g}-{self.until_s:g} s"


@dataclass(frozen=True, slots=True)
class Load:
    """The steady load offered throughout the run."""

    rate: int = 20
    tx_bytes: int = 128


@dataclass(frozen=True, slots=True)
class Broken:
    """A node started from a deliberately broken build (its config, before the start)."""

    node: int
    build: str  # one of BUILDS

    def config_line(self) -> str:
        """What is appended to the node's ``node-<i>.toml``."""
        return f"misbehaviour = {{{self.build} = true}}\n"


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
    expect_safe: bool = True
    broken: Broken | None = None
    source: str = ""  # where it was read from, for messages

    @property
    def needs_admin(self) -> bool:
        """Whether its faults need the validators' admin endpoints (a test network)."""
        return any(not fault.kind.on_processes for fault in self.faults)

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
    return _most(faults, lambda f: f.width(n))


def most_byzantine(faults: tuple[Fault, ...], n: int) -> tuple[int, float]:
    """The most Byzantine validators at one moment, and the first moment it happens."""
    return _most(faults, lambda f: f.byzantine(n))


def most_faulty(faults: tuple[Fault, ...], n: int) -> tuple[int, float]:
    """The most validators down or Byzantine at one moment, and from when."""
    return _most(faults, lambda f: f.width(n) + f.byzantine(n))


def _most(faults: tuple[Fault, ...], size: Callable[[Fault], int]) -> tuple[int, float]:
    best, when = 0, 0.0
    for start in sorted({fault.at_s for fault in faults}):
        total = sum(size(f) for f in faults if f.at_s <= start < f.until_s)
        if total > best:
            best, when = total, start
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
    live, safe = expect.get("live", True), expect.get("safe", True)
    for key, value in (("live", live), ("safe", safe)):
        if not isinstance(value, bool):
            raise where.error(f"expect.{key}", f"= {value!r}: must be true or false")
    broken = _broken(where, data.get("broken"), nodes)
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
        expect_safe=safe,
        broken=broken,
        source=source,
    )
    check(scenario)
    return scenario


def check(s: Scenario) -> None:
    """What no single key shows: faults that collide, and the expectation against the faults."""
    where = _Where(s.source)
    for i, a in enumerate(s.faults, start=1):
        for j, b in enumerate(s.faults[i:], start=i + 1):
            if a.overlaps(b):
                _overlapping(where, i, a, j, b)
    if s.broken is not None and s.expect_safe:
        raise where.error(
            "broken",
            f"starts node {s.broken.node} from a broken build ({s.broken.build}), which the "
            "checkers must catch: set expect.safe = false to say the run is expected to fail",
        )
    byzantine, when = most_byzantine(s.faults, s.nodes)
    if s.expect_safe and byzantine > s.f:
        raise where.error(
            "expect.safe",
            f"= true, but {byzantine} of {s.nodes} validators are Byzantine at {when:g} s, more "
            f"than f = {s.f}: nothing guarantees safety then; set expect.safe = false to run it "
            "anyway (the checkers will say what broke)",
        )
    faulty, when = most_faulty(s.faults, s.nodes)
    if s.expect_live and faulty > s.spare and byzantine:
        raise where.error(
            "expect.live",
            f"= true, but {faulty} of {s.nodes} validators are down or Byzantine at {when:g} s, "
            f"more than {s.spare} (f = {s.f}): liveness is not guaranteed; fewer faults at once, "
            "or set expect.live = false",
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


def _overlapping(where: _Where, i: int, a: Fault, j: int, b: Fault) -> None:
    """Two faults whose windows overlap: refused unless they can run side by side."""
    both = f"({b.describe()}) overlaps faults[{i}] ({a.describe()})"
    if FaultKind.RESTART_ALL in (a.kind, b.kind):
        raise where.error(
            f"faults[{j}]", f"{both}; restart_all takes every node, so nothing else can run "
            "beside it",
        )  # fmt: skip
    if a.kind.on_processes != b.kind.on_processes:
        raise where.error(
            f"faults[{j}]", f"{both}; a fault through the admin endpoint cannot run beside one "
            "that stops processes (a killed or paused node loses or cannot take its rules)",
        )  # fmt: skip
    if a.kind.on_links and b.kind.on_links:
        raise where.error(
            f"faults[{j}]", f"{both}; each node holds one set of link rules, so one partition or "
            "delay_loss at a time",
        )  # fmt: skip
    shared = sorted({t for t in a.targets if isinstance(t, int)} & set(b.targets))
    if shared:
        raise where.error(
            f"faults[{j}]",
            f"({b.describe()}) targets node {shared[0]}, which faults[{i}] "
            f"({a.describe()}) already holds then: one fault per node at a time",
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
    allowed = COMMON_KEYS + KIND_KEYS[kind.value]
    for key in raw:
        if key not in allowed:
            takers = [name for name, keys in KIND_KEYS.items() if key in keys]
            raise where.error(
                f"{at}.{key}", f"is not a key of {kind.value} faults (only of "
                f"{', '.join(takers)}); {kind.value} takes {', '.join(allowed)}",
            )  # fmt: skip
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
    if kind is FaultKind.PARTITION:
        groups = _groups(where, at, raw.get("groups"), nodes)
        rest = sum(map(len, groups)) < nodes
        return Fault(kind, (), start, end, groups=groups, rest=rest)
    if kind is FaultKind.DELAY_LOSS:
        targets = () if "targets" not in raw else _targets(where, at, kind, raw["targets"], nodes)
        loss = _probability(where, f"{at}.loss", raw.get("loss", 0.0))
        delay = _integer(where, f"{at}.delay_ms", raw.get("delay_ms", 0), 0, MAX_DELAY_MS)
        if not loss and not delay:
            raise where.error(at, "does nothing: give it loss (0..1), delay_ms, or both")
        protocol = raw.get("protocol")
        if protocol is not None and protocol not in PROTOCOLS:
            raise where.error(
                f"{at}.protocol", f"= {protocol!r}: one of {', '.join(PROTOCOLS)} (or leave it "
                "out for every protocol)",
            )  # fmt: skip
        return Fault(kind, targets, start, end, loss=loss, delay_ms=delay, protocol=protocol)
    targets = _targets(where, at, kind, raw.get("targets"), nodes)
    if kind is FaultKind.BYZANTINE:
        behaviour, namespace = _behaviour(where, at, raw)
        return Fault(kind, targets, start, end, behaviour=behaviour, namespace=namespace)
    return Fault(kind, targets, start, end)


def _probability(where: _Where, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise where.error(key, f"= {value!r}: must be a probability from 0 to 1")
    if not 0.0 <= float(value) <= 1.0:
        raise where.error(key, f"= {value}: must be a probability from 0 to 1")
    return float(value)


def _behaviour(where: _Where, at: str, raw: Mapping[str, Any]) -> tuple[str, str | None]:
    behaviour = raw.get("behaviour")
    if behaviour is None:
        raise where.error(f"{at}.behaviour", f"is required; one of {', '.join(BEHAVIOURS)}")
    if behaviour not in BEHAVIOURS:
        raise where.error(
            f"{at}.behaviour", f"= {behaviour!r} is no behaviour; known: {', '.join(BEHAVIOURS)}"
        )
    namespace = raw.get("namespace")
    if behaviour == "censor":
        if not isinstance(namespace, str) or not namespace.strip():
            raise where.error(f"{at}.namespace", "is required for censor: the namespace left out")
        return behaviour, namespace.strip()
    if namespace is not None:
        raise where.error(f"{at}.namespace", f"is for censor only, not {behaviour}")
    return behaviour, None


def _groups(where: _Where, at: str, value: Any, nodes: int) -> tuple[tuple[Target, ...], ...]:
    key = f"{at}.groups"
    if value is None:
        raise where.error(
            key, "is required: the sides of the split, e.g. [[0, 1], [2, 3]] or [[\"leader\"]] "
            "(the nodes no group names form one more group)",
        )  # fmt: skip
    if not isinstance(value, list) or not value or not all(isinstance(g, list) for g in value):
        raise where.error(key, f"= {value!r}: must be a list of lists of nodes")
    seen: list[Target] = []
    groups = []
    for group in value:
        if not group:
            raise where.error(key, "holds an empty group")
        for item in group:
            if isinstance(item, bool) or not isinstance(item, int | str):
                raise where.error(key, f'holds {item!r}: a node index or "leader"')
            if isinstance(item, str) and item != LEADER:
                raise where.error(key, f'holds {item!r}: the only symbol here is "leader"')
            if isinstance(item, int) and not 0 <= item < nodes:
                raise where.error(
                    key, f"holds node {item}, outside the committee: nodes are 0..{nodes - 1}"
                )
            if item in seen:
                raise where.error(key, f"names {item!r} twice")
            seen.append(item)
        groups.append(tuple(group))
    fault = Fault(FaultKind.PARTITION, (), 0.0, 1.0, groups=tuple(groups))
    if len(seen) > nodes:
        raise where.error(key, f"names {len(seen)} nodes; there are {nodes}")
    if len(fault.group_sizes(nodes)) < 2:
        raise where.error(key, "names every node in one group: nothing is cut")
    return tuple(groups)


def _broken(where: _Where, value: Any, nodes: int) -> Broken | None:
    if value is None:
        return None
    table = _table(where, "broken", value)
    _known(where, "broken.", table, BROKEN_KEYS)
    if "node" not in table:
        raise where.error("broken.node", "is required: the node started from the broken build")
    node = _integer(where, "broken.node", table["node"], 0, nodes - 1)
    build = table.get("build")
    if build not in BUILDS:
        raise where.error("broken.build", f"= {build!r}: one of {', '.join(BUILDS)}")
    return Broken(node, build)


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
    if fault.count(nodes) == 0:
        raise where.error(key, f"= {value!r} is no node: f = 0 for {nodes} nodes")
    if fault.count(nodes) > nodes:
        raise where.error(key, f"= {value!r} is {fault.count(nodes)} nodes; there are {nodes}")
    return tuple(out)
