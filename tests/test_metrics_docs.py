"""docs/metrics.md lists exactly the series a validator exports, with their types and labels."""

from __future__ import annotations

import pathlib
import re

from sequencer_net.node.metrics import NodeMetrics

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(seqnet_\w+)` \| (\w+) \| ([^|]*) \|", re.MULTILINE)


def _exported() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Series name (counters with ``_total``) -> (type, label names), from the code."""
    out = {}
    for metric in vars(NodeMetrics()).values():
        kind = getattr(metric, "_type", None)
        if kind is None:
            continue
        name = metric._name + ("_total" if kind == "counter" else "")
        out[name] = (kind, tuple(metric._labelnames))
    return out


def _documented() -> dict[str, tuple[str, tuple[str, ...]]]:
    rows = ROW.findall(DOC.read_text())
    return {name: (kind, tuple(re.findall(r"`(\w+)`", labels))) for name, kind, labels in rows}


def test_every_exported_series_is_documented_with_its_type_and_labels() -> None:
    exported, documented = _exported(), _documented()
    assert len(exported) >= 30
    assert documented == exported
