"""Submit one transaction and wait for its fate: what a rollup client does end to end.

The transaction is encrypted for ``namespace`` with the network's threshold key
from its genesis, so no single validator can read it before it is ordered;
then posted to one node's API and polled until the node reports it decrypted
(or invalid). Kept apart from the command line so programs can call it too.
"""

from __future__ import annotations

import time
from typing import Any

from sequencer_net.client.encrypt import seal
from sequencer_net.client.http import ClientError, get_json, post
from sequencer_net.node.genesis import Genesis

POLL_S = 0.02  # between status requests while waiting for decryption


def submit_and_wait(
    address: str, genesis: Genesis, namespace: str, payload: bytes, timeout_s: float
) -> dict[str, Any]:
    """Encrypt, submit, poll until decrypted; the node's final record of the transaction."""
    try:
        sealed = seal(genesis, namespace, payload)
    except ValueError as exc:
        raise ClientError(str(exc)) from None
    digest = post(address, "/v1/transactions", sealed.data)["digest"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        record: dict[str, Any] = get_json(address, f"/v1/transactions/{digest}")
        if record["status"] in ("decrypted", "invalid"):
            return record
        time.sleep(POLL_S)
    raise ClientError(f"transaction {digest} not decrypted within {timeout_s}s")
