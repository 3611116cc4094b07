"""A name registry rollup: the first to register a name owns it; only its owner transfers it.

A transaction is UTF-8 JSON, one of
``{"op": "register", "name": str, "owner": str}`` and
``{"op": "transfer", "name": str, "owner": str, "by": str}`` (``owner`` is the
new owner, ``by`` who asks: here it stands for the sender's identity, which a
real rollup would take from a signature). The state maps each registered name
to its owner. A transaction is skipped, leaving the state as it was, when it
is an invalid leaf (it opened to nothing), is not exactly one of those shapes
(non-empty strings; see ``examples.rollup.json_object`` for what counts as
JSON), registers a name already taken, or transfers a name that is not
registered or not owned by ``by``. Skipping is deterministic: every honest
follower of the same heights reaches the same state root.

Run: ``python -m examples.name_registry --rollup rollup-b --from 1``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from examples.rollup import Rollup, json_object, main, text

SHAPES = {
    "register": {"op", "name", "owner"},
    "transfer": {"op", "name", "owner", "by"},
}

Names = Mapping[str, str]  # name -> owner


def registry_step(names: Names, plaintext: bytes | None) -> Names | None:
    """The registry after the operation ``plaintext`` holds; None if it is skipped."""
    tx = json_object(plaintext)
    if tx is None or not isinstance(tx.get("op"), str) or SHAPES.get(tx["op"]) != set(tx):
        return None
    if not all(text(tx[key]) for key in tx):
        return None
    name, owner = tx["name"], tx["owner"]
    if tx["op"] == "register" and name in names:
        return None  # first register wins
    if tx["op"] == "transfer" and names.get(name) != tx["by"]:
        return None  # only the current owner transfers
    return {**names, name: owner}


NAME_REGISTRY: Rollup[Names] = Rollup("name_registry", {}, registry_step)

if __name__ == "__main__":
    sys.exit(main(NAME_REGISTRY))
