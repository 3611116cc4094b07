"""Submit one transaction and wait for its fate: what a rollup client does end to end.

The transaction is encrypted for ``namespace`` with the network's threshold key
from its genesis, so no single validator can read it before it is ordered;
then posted to one node's API and polled until the node reports it decrypted
(or invalid). :func:`submit` is for trio programs; :func:`submit_and_wait` is
the same for plain scripts (and ``seqnet submit``).
"""

from __future__ import annotations

from typing import Any

import trio

from sequencer_net.client.encrypt import seal
from sequencer_net.client.http import ClientError, get_json, in_thread, post
from sequencer_net.node.genesis import Genesis

POLL_S = 0.02  # between status requests while waiting for decryption
FINAL = ("decrypted", "invalid")


async def submit(
    address: str, genesis: Genesis, namespace: str, payload: bytes, timeout_s: float
) -> dict[str, Any]:
    """Encrypt, submit, poll until decrypted; the node's final record of the transaction.

    Raises :class:`ClientError` if the node refuses it, cannot be reached, or
    has not decrypted it within ``timeout_s``. HTTP runs in worker threads, so
    the event loop stays free; cancelling abandons the request in flight.
    """
    try:
        sealed = seal(genesis, namespace, payload)
    except ValueError as exc:
        raise ClientError(str(exc)) from None
    with trio.move_on_after(timeout_s):
        digest = (await in_thread(post, address, "/v1/transactions", sealed.data))["digest"]
        while True:
            record: dict[str, Any] = await in_thread(
                get_json, address, f"/v1/transactions/{digest}"
            )
            if record["status"] in FINAL:
                return record
            await trio.sleep(POLL_S)
    raise ClientError(f"transaction for {namespace} not decrypted within {timeout_s}s")


def submit_and_wait(
    address: str, genesis: Genesis, namespace: str, payload: bytes, timeout_s: float
) -> dict[str, Any]:
    """:func:`submit` for code that is not running trio."""
    return trio.run(submit, address, genesis, namespace, payload, timeout_s)
