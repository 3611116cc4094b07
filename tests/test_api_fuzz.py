"""Property-based fuzzing of a running node's HTTP API from its own OpenAPI document.

Schemathesis reads ``/openapi.json`` from a node of a committing 4-node cluster
and sends every operation generated requests, valid and invalid (wrong types,
out-of-range heights, garbage and JSON bodies where CBOR or hex is expected).
Every answer must not be a 5xx, must carry a status code and a content type
the document declares for that operation, and must have a body that the
declared schema describes.

Random requests rarely reach the success paths (an accepted transaction, a
decrypted batch, a receipt), so the second test drives real traffic through
them and holds those answers to the same checks.

The schema is loaded in a fixture and each operation run through its own
Hypothesis test (``operation.as_strategy``): schemathesis' lazy pytest loader
(``schemathesis.pytest.from_fixture``) does not run under pytest 9.2 (it sets
``Function._nodeid``, which pytest no longer has).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import cbor2
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.transport.serialization import Binary

from sequencer_net.node.api import MAX_BODY_BYTES
from tests.cluster import Processes, committing, encrypted

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
MAX_EXAMPLES = 25  # per operation: the whole module stays well under a minute on 2 cores
REQUEST_TIMEOUT_S = 10
CBOR = "application/cbor"
# Every operation the node served when this test was written; more may come.
KNOWN = {
    "POST /v1/transactions",
    "POST /v1/transactions/batch",
    "GET /v1/transactions/{digest}",
    "GET /v1/status",
    "GET /v1/batches/{height}",
    "GET /v1/namespaces/{namespace}/batches/{height}",
    "GET /v1/transactions/{digest}/receipt",
}


@schemathesis.serializer(CBOR)
def cbor_body(ctx: schemathesis.SerializationContext, value: Any) -> bytes:
    """Raw bytes as they are (a ciphertext's encoding); anything else as CBOR (a batch)."""
    if isinstance(value, Binary):
        return value.data
    if isinstance(value, bytes):
        return value
    return cbor2.dumps(_plain(value), canonical=True)


def _plain(value: Any) -> Any:
    """Generated values with schemathesis' ``Binary`` (bytes posing as str) as bytes."""
    if isinstance(value, Binary):
        return value.data
    if isinstance(value, list):
        return [_plain(x) for x in value]
    if isinstance(value, dict):
        return {k: _plain(x) for k, x in value.items()}
    return value


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Processes]:
    with committing(tmp_path_factory.mktemp("fuzz")) as c:
        yield c


@pytest.fixture(scope="module")
def api_schema(cluster: Processes) -> schemathesis.BaseSchema:
    url = f"http://{cluster.api(0)}/openapi.json"
    return schemathesis.openapi.from_url(url, timeout=REQUEST_TIMEOUT_S)


def operations(schema: schemathesis.BaseSchema) -> list[schemathesis.APIOperation]:
    found = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in found}
    assert labels >= KNOWN, f"missing from the OpenAPI document: {KNOWN - labels}"
    return found


def fuzz(operation: schemathesis.APIOperation) -> None:
    """Generated requests, valid and invalid, through every check; raises on the first failure.

    Both generation modes in one strategy: an operation with nothing to make
    invalid (no parameters, no body) only ever draws valid requests.
    """
    cases = st.one_of(
        [operation.as_strategy(generation_mode=mode) for mode in schemathesis.GenerationMode]
    )

    @given(case=cases)
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(checks=CHECKS, timeout=REQUEST_TIMEOUT_S)

    run()


def test_no_server_error_and_no_answer_outside_the_schema(
    api_schema: schemathesis.BaseSchema,
) -> None:
    failures: dict[str, str] = {}
    for operation in operations(api_schema):
        try:
            fuzz(operation)
        except (Exception, BaseExceptionGroup) as exc:  # schemathesis' FailureGroup is Base*
            failures[operation.label] = str(exc)
    assert not failures, "\n\n".join(f"== {op}\n{why}" for op, why in failures.items())


def test_real_traffic_conforms_too(cluster: Processes, api_schema: schemathesis.BaseSchema) -> None:
    ops = {op.label: op for op in operations(api_schema)}
    submit, batch = ops["POST /v1/transactions"], ops["POST /v1/transactions/batch"]

    tx = encrypted(cluster.genesis, "rollup-a", b"fuzz: the real thing")
    accepted = call(submit, body=tx.hex(), media_type="text/plain")
    assert accepted.status_code == 202, accepted.text
    digest = accepted.json()["digest"]
    assert call(submit, body=tx, media_type=CBOR).status_code == 409
    oversized = "00" * (MAX_BODY_BYTES // 2 + 1)
    assert call(submit, body=oversized, media_type="text/plain").status_code == 413
    other = encrypted(cluster.genesis, "rollup-b", b"fuzz: and another")
    wrong_ns = encrypted(cluster.genesis, "rollup-zzz", b"fuzz: nobody's")
    verdicts = call(batch, body=[other, wrong_ns, b"junk"], media_type=CBOR)
    assert [r["status"] for r in verdicts.json()["results"]] == [
        "pending",
        "unknown-namespace",
        "malformed",
    ]

    # Every GET whose parameters are among these, once it has something to show (200),
    # in JSON and, where the document offers it, in CBOR.
    where = _wait_decrypted(ops["GET /v1/transactions/{digest}"], digest)
    known = {"digest": digest, "height": where["height"], "namespace": "rollup-a"}
    for label, operation in ops.items():
        names = {p.name for p in operation.path_parameters}
        if operation.method.upper() != "GET" or not names <= known.keys():
            continue
        params = {name: known[name] for name in names}
        deadline = time.monotonic() + 30  # certified (and receipts proved) a little later
        while (status := call(operation, path_parameters=params).status_code) != 200:
            assert status == 404 and time.monotonic() < deadline, (label, status)
            time.sleep(0.1)
        if CBOR in operation.definition.raw["responses"]["200"].get("content", {}):
            cbor = call(operation, path_parameters=params, headers={"accept": CBOR})
            assert cbor.headers["content-type"] == [CBOR], label
            assert cbor2.loads(cbor.content), label
        if label == "GET /v1/batches/{height}":
            only_a = call(operation, path_parameters=params, query={"namespace": "rollup-a"})
            assert [t["digest"] for t in only_a.json()["transactions"]] == [digest]


def call(operation: schemathesis.APIOperation, **kwargs: Any) -> schemathesis.Response:
    """One request through every check."""
    case = operation.Case(**kwargs)
    return case.call_and_validate(checks=CHECKS, timeout=REQUEST_TIMEOUT_S)


def _wait_decrypted(operation: schemathesis.APIOperation, digest: str) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while True:
        found: dict[str, Any] = call(operation, path_parameters={"digest": digest}).json()
        if found["status"] == "decrypted":
            return found
        assert time.monotonic() < deadline, found
        time.sleep(0.1)
