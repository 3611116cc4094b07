"""The operator commands of ``seqnet`` (cluster, bench, soak, sim, chaos).

Each module has ``add(subparsers)``; ``pyproject.toml`` registers them in the
``seqnet.commands`` entry point group, which the command line loads, so the
node's packages never import ``ops``.
"""

from __future__ import annotations

import math
from typing import Any


def finite(value: Any) -> Any:
    """``value`` with NaN and infinities as null, for ``--json`` (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
