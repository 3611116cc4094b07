"""A token ledger rollup: transfers between accounts that each start with 100 tokens.

A transaction is UTF-8 JSON ``{"from": str, "to": str, "amount": int}``. The
state is the balance of every account a transfer has touched (an account
never touched holds ``STARTING_BALANCE``). A transaction is skipped, leaving
the state as it was, when it is an invalid leaf (it opened to nothing), is not
a JSON object of exactly that shape (non-empty names, a positive whole
amount; see ``examples.rollup.json_object`` for what counts as JSON), sends
to its own sender, or would overdraw the sender. Skipping is deterministic:
every honest follower of the same heights reaches the same state root.

Run: ``python -m examples.token_ledger --rollup rollup-a --from 1``.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping

from examples.rollup import Rollup, json_object, main, text, whole

STARTING_BALANCE = 100
FIELDS = {"from", "to", "amount"}

Ledger = Mapping[str, int]  # account -> balance, for every account a transfer touched


def balance(ledger: Ledger, account: str) -> int:
    return ledger.get(account, STARTING_BALANCE)


def transfer(ledger: Ledger, plaintext: bytes | None) -> Ledger | None:
    """The ledger after the transfer ``plaintext`` holds; None if it is skipped."""
    tx = json_object(plaintext)
    if tx is None or set(tx) != FIELDS:
        return None
    sender, receiver, amount = tx["from"], tx["to"], tx["amount"]
    if not (text(sender) and text(receiver) and whole(amount)) or amount <= 0:
        return None
    if sender == receiver or balance(ledger, sender) < amount:
        return None
    after = dict(ledger)
    after[sender] = balance(ledger, sender) - amount
    after[receiver] = balance(ledger, receiver) + amount
    return after


TOKEN_LEDGER: Rollup[Ledger] = Rollup("token_ledger", {}, transfer)

if __name__ == "__main__":
    sys.exit(main(TOKEN_LEDGER))
