"""The monitoring bundle of `seqnet cluster up`: its files, and a real Prometheus on them.

The files must parse, the dashboard must validate against Grafana's own JSON Schemas
(tests/schemas/grafana/README.md says which), and every PromQL expression may name
only series a validator exports (or Prometheus' ``up``); ``promtool`` replays each
alert's situation on synthetic series. With the ``prometheus``
binary (Debian package ``prometheus``), a real server scrapes a real 4-node cluster
and fires the quorum alert when two nodes are killed, and ``cluster up --prometheus``
runs and stops one with its nodes.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest
import yaml

from ops import monitoring
from ops.monitoring import alerts, dashboard, server
from sequencer_net.node import network
from sequencer_net.node.metrics import NodeMetrics
from tests.cluster import Processes, free_base_port, seqnet

SCHEMAS = pathlib.Path(__file__).parent / "schemas" / "grafana"
PROMETHEUS = shutil.which("prometheus")
PROMTOOL = shutil.which("promtool")
NO_PROMETHEUS = "no `prometheus` binary on PATH (Debian package `prometheus`)"
NO_PROMTOOL = "no `promtool` on PATH (Debian package `prometheus`)"


# ---------------------------------------------------------------- series names


def exported_series() -> set[str]:
    """Every series name a node's /metrics can show, from the code: counters end in
    ``_total``, histograms are ``_bucket``, ``_sum`` and ``_count``."""
    names = set()
    for metric in vars(NodeMetrics()).values():
        kind = getattr(metric, "_type", None)
        if kind == "counter":
            names.add(metric._name + "_total")
        elif kind == "histogram":
            names |= {metric._name + suffix for suffix in ("_bucket", "_sum", "_count")}
        elif kind is not None:
            names.add(metric._name)
    return names


PROMQL_WORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def series_in(expr: str) -> set[str]:
    """The series names a PromQL expression selects (not functions, labels or keywords)."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range and subquery windows
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = re.findall(r"(?<![\w$.])([A-Za-z_:][\w:]*)\b(?!\s*\()", expr)
    return {name for name in names if name.lower() not in PROMQL_WORDS}


def test_series_in_finds_series_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (validator, le) (rate(seqnet_x_bucket{job="a", '
        'reason=~"b|c"}[$__rate_interval]))) > 1.5 or up{job="seqnet"} == 0 and '
        "changes(seqnet_y[1m]) == 0 unless time() - seqnet_z offset 5m > 30"
    )
    assert series_in(expr) == {"seqnet_x_bucket", "up", "seqnet_y", "seqnet_z"}
    assert series_in("rate(seqnet_blocks_comitted_total[1m])") == {"seqnet_blocks_comitted_total"}


def test_the_documented_series_are_the_exported_ones() -> None:
    documented = set(re.findall(r"^\| `(seqnet_\w+)` \|", _metrics_doc(), re.MULTILINE))
    plain = {n for n in exported_series() if not n.endswith(("_bucket", "_sum", "_count"))}
    histograms = {n.removesuffix("_bucket") for n in exported_series() if n.endswith("_bucket")}
    assert documented == plain | histograms


def _metrics_doc() -> str:
    return (pathlib.Path(__file__).parent.parent / "docs" / "metrics.md").read_text()


# ---------------------------------------------------------------- the files


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> monitoring.Bundle:
    directory = tmp_path_factory.mktemp("bundle") / "net"
    network.write_network(directory, 4, base_port=free_base_port(4, (0, 1000, 2000)))
    return monitoring.write_bundle(directory, interval_s=1)


def _yaml(path: pathlib.Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_prometheus_config_scrapes_every_validator_with_its_label(
    bundle: monitoring.Bundle,
) -> None:
    config = _yaml(bundle.prometheus_config)
    assert config["global"] == {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
    }
    assert config["rule_files"] == ["alerts.yml"]
    assert (bundle.prometheus_config.parent / config["rule_files"][0]) == bundle.alert_rules
    [job] = config["scrape_configs"]
    assert job["job_name"] == "seqnet" and job["metrics_path"] == "/metrics"
    nodes = network.members(bundle.prometheus_config.parent)
    assert job["static_configs"] == [
        {"targets": [m.metrics], "labels": {"validator": str(m.index)}} for m in nodes
    ]


def test_alert_rules_have_for_severity_and_annotations(bundle: monitoring.Bundle) -> None:
    [group] = _yaml(bundle.alert_rules)["groups"]
    rules = {rule["alert"]: rule for rule in group["rules"]}
    assert set(rules) == {
        "SeqnetQuorumLost",
        "SeqnetValidatorDown",
        "SeqnetChainStalled",
        "SeqnetSubmitToDecryptLatencyHigh",
        "SeqnetDecryptionBehind",
        "SeqnetInvalidDecryptionShares",
    }
    for rule in rules.values():
        assert re.fullmatch(r"[1-9]\d*s", rule["for"]), rule
        assert rule["labels"]["severity"] in ("critical", "warning")
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
    assert rules["SeqnetQuorumLost"]["expr"] == 'sum(up{job="seqnet"}) < 3'
    assert rules["SeqnetValidatorDown"]["expr"] == 'up{job="seqnet"} == 0'
    assert "histogram_quantile(0.99" in rules["SeqnetSubmitToDecryptLatencyHigh"]["expr"]


@pytest.mark.parametrize(("n", "quorum"), [(4, 3), (5, 4), (7, 5), (10, 7)])
def test_the_quorum_rule_follows_the_committee(n: int, quorum: int) -> None:
    [rule] = [r for r in alerts.rules(n=n, quorum=quorum) if r.name == "SeqnetQuorumLost"]
    assert rule.expr.endswith(f"< {quorum}") and f"of {n} validators" in rule.summary


def test_bundle_takes_the_quorum_from_the_genesis_and_scales_with_the_interval(
    tmp_path: pathlib.Path,
) -> None:
    network.write_network(tmp_path, 5, base_port=free_base_port(5, (0, 1000, 2000)))
    written = monitoring.write_bundle(tmp_path)  # the default: every 5 s
    rules = _yaml(written.alert_rules)["groups"][0]["rules"]
    [quorum] = [r for r in rules if r["alert"] == "SeqnetQuorumLost"]
    assert quorum["expr"].endswith("< 4")  # (n + f) // 2 + 1 with n = 5, f = 1
    assert [r["for"] for r in rules][:2] == ["15s", "30s"]  # 3 and 6 evaluations of 5 s
    assert _yaml(written.prometheus_config)["global"]["scrape_timeout"] == "5s"
    slow = monitoring.write_bundle(tmp_path, interval_s=15)
    assert _yaml(slow.prometheus_config)["global"]["scrape_timeout"] == "10s"  # at most 10 s
    with pytest.raises(monitoring.MonitoringError, match="at least 1 s"):
        monitoring.write_bundle(tmp_path, interval_s=0)


def _validate(instance: Any, schema: dict[str, Any], definition: str | None = None) -> None:
    if definition is not None:
        schema = {"$ref": f"#/definitions/{definition}", "definitions": schema["definitions"]}
    jsonschema.Draft7Validator(schema).validate(instance)


def _schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.jsonschema.json").read_text())
    return loaded


def test_dashboard_validates_against_grafanas_schemas(bundle: monitoring.Bundle) -> None:
    board = json.loads(bundle.dashboard.read_text())
    jsonschema.Draft7Validator.check_schema(_schema("dashboard"))
    _validate(board, _schema("dashboard"))
    panels = {"timeseries": _schema("timeseries"), "stat": _schema("stat")}
    query = _schema("prometheus")
    for panel in board["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["type"] in panels, panel["type"]
        _validate(panel["options"], panels[panel["type"]], "Options")
        if panel["type"] == "timeseries":
            _validate(
                panel["fieldConfig"]["defaults"]["custom"], panels["timeseries"], "FieldConfig"
            )
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"]
        for target in panel["targets"]:
            _validate(target, query, "Dataquery")
    ids = [panel["id"] for panel in board["panels"]]
    assert len(set(ids)) == len(ids)


def test_a_misspelt_field_fails_the_schema() -> None:
    board = dashboard.build(5)
    board["panels"][1]["gridpos"] = board["panels"][1].pop("gridPos")
    with pytest.raises(jsonschema.ValidationError, match="gridpos"):
        _validate(board, _schema("dashboard"))


def test_dashboard_has_the_panels_and_variables_operators_need(bundle: monitoring.Bundle) -> None:
    board = json.loads(bundle.dashboard.read_text())
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["validator"]["type"] == "query"
    exprs = " ".join(t["expr"] for p in board["panels"] for t in p.get("targets", []))
    for needed in (
        "seqnet_height",
        "seqnet_round",
        "seqnet_timeouts_total",
        "histogram_quantile(0.5",
        "histogram_quantile(0.99",
        "seqnet_submit_to_decrypt_seconds_bucket",
        "seqnet_blocks_committed_total",
        "seqnet_transactions_decrypted_total",
        "seqnet_messages_rejected_total",
        "seqnet_messages_ignored_total",
        "seqnet_connected_peers",
    ):
        assert needed in exprs, needed
    assert board["refresh"] == "1s"


def _expressions(bundle: monitoring.Bundle) -> list[str]:
    rules = _yaml(bundle.alert_rules)["groups"][0]["rules"]
    board = json.loads(bundle.dashboard.read_text())
    targets = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    variables = [v["query"] for v in board["templating"]["list"] if v["type"] == "query"]
    label_values = [re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", q) for q in variables]
    return [r["expr"] for r in rules] + targets + label_values


def test_every_expression_names_only_exported_series(bundle: monitoring.Bundle) -> None:
    known = exported_series() | {"up"}
    expressions = _expressions(bundle)
    assert len(expressions) > 25
    for expr in expressions:
        named = series_in(expr)
        assert named, f"no series in {expr!r}"
        assert named <= known, f"{expr!r} names {sorted(named - known)}, not exported"


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_promtool_accepts_the_config_and_the_rules(bundle: monitoring.Bundle) -> None:
    assert PROMTOOL is not None
    for what, path in (("config", bundle.prometheus_config), ("rules", bundle.alert_rules)):
        done = subprocess.run(
            [PROMTOOL, "check", what, str(path)], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr


def _node(instance: str, validator: str) -> dict[str, str]:
    return {"job": "seqnet", "instance": instance, "validator": validator}


# Synthetic series for `promtool test rules` (one sample a second): each alert's situation,
# on its own validator so that no other alert fires, and the alerts expected at a time.
SITUATIONS = {
    'up{job="seqnet", instance="a:1", validator="0"}': "1x120",
    'up{job="seqnet", instance="b:1", validator="1"}': "1x9 0x110",
    'up{job="seqnet", instance="c:1", validator="2"}': "1x9 0x110",
    'up{job="seqnet", instance="d:1", validator="3"}': "1x120",
    # validator 0 never committed: the chain stalls once 30 s have passed
    'seqnet_last_commit_timestamp_seconds{job="seqnet", instance="a:1", validator="0"}': "0x120",
    # validator 1 commits on while its decrypted height stands still 60 blocks behind
    'seqnet_height{job="seqnet", instance="b:1", validator="1"}': "100+1x120",
    'seqnet_decrypted_height{job="seqnet", instance="b:1", validator="1"}': "40x120",
    # validator 2 blames 3 share batches of validator 0 at t = 10 s; validator 3's decode
    # rejections are no alert
    'seqnet_decryption_shares_invalid_total{job="seqnet", instance="c:1", validator="2", '
    'sender="0"}': "0x9 3x110",
    'seqnet_messages_rejected_total{job="seqnet", instance="d:1", validator="3", '
    'protocol="shares", reason="decode"}': "0+1x120",
    # validator 3 decrypts everything in 1-2.5 s: p99 = 1 + 1.5 * 0.99 = 2.485 s
    'seqnet_submit_to_decrypt_seconds_bucket{job="seqnet", instance="d:1", validator="3", '
    'namespace="rollup-a", le="1.0"}': "0x120",
    'seqnet_submit_to_decrypt_seconds_bucket{job="seqnet", instance="d:1", validator="3", '
    'namespace="rollup-a", le="2.5"}': "0+10x120",
    'seqnet_submit_to_decrypt_seconds_bucket{job="seqnet", instance="d:1", validator="3", '
    'namespace="rollup-a", le="+Inf"}': "0+10x120",
}
B, C, D = ("b:1", "1"), ("c:1", "2"), ("d:1", "3")
# (alert, at second, [(labels beyond the alert's own, rendered $value)])
EXPECTED: list[tuple[str, int, list[tuple[dict[str, str], str]]]] = [
    ("SeqnetQuorumLost", 8, []),
    ("SeqnetQuorumLost", 20, [({}, "2")]),
    ("SeqnetValidatorDown", 12, []),  # down for 3 s of the 6 it needs
    ("SeqnetValidatorDown", 20, [(_node(*B), "0"), (_node(*C), "0")]),
    ("SeqnetChainStalled", 25, []),
    ("SeqnetChainStalled", 40, [({}, "40")]),
    ("SeqnetDecryptionBehind", 30, [(_node(*B), "90")]),
    (
        "SeqnetInvalidDecryptionShares",
        30,
        [({"sender": "0"}, "1")],
    ),
    ("SeqnetSubmitToDecryptLatencyHigh", 60, [({"validator": "3"}, "2.485s")]),
]


def _render(template: str, labels: dict[str, str], value: str) -> str:
    """An annotation as Prometheus renders it, for the few template forms the rules use."""
    text = template.replace("{{ $value | humanizeDuration }}", value)
    text = text.replace("{{ $value }}", value)
    for name, label in labels.items():
        text = text.replace(f"{{{{ $labels.{name} }}}}", label)
    assert "{{" not in text, text
    return text


@pytest.mark.skipif(PROMTOOL is None, reason=NO_PROMTOOL)
def test_each_alert_fires_in_its_situation_and_not_before(
    bundle: monitoring.Bundle, tmp_path: pathlib.Path
) -> None:
    assert PROMTOOL is not None
    rules = {rule.name: rule for rule in alerts.rules(n=4, quorum=3)}
    assert {name for name, _, firing in EXPECTED if firing} == set(rules)

    def expected(name: str, labels: dict[str, str], value: str) -> dict[str, Any]:
        rule = rules[name]
        return {
            "exp_labels": {"severity": rule.severity} | labels,
            "exp_annotations": {
                "summary": _render(rule.summary, labels, value),
                "description": _render(rule.description, labels, value),
            },
        }

    unit_tests = {
        "rule_files": [str(bundle.alert_rules)],
        "evaluation_interval": "1s",
        "tests": [
            {
                "interval": "1s",
                "input_series": [{"series": k, "values": v} for k, v in SITUATIONS.items()],
                "alert_rule_test": [
                    {
                        "eval_time": f"{at}s",
                        "alertname": name,
                        "exp_alerts": [expected(name, *alert) for alert in firing],
                    }
                    for name, at, firing in EXPECTED
                ],
            }
        ],
    }
    path = tmp_path / "alerts_test.yml"
    path.write_text(yaml.safe_dump(unit_tests, sort_keys=False))
    done = subprocess.run(
        [PROMTOOL, "test", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


# ---------------------------------------------------------------- a real Prometheus


def prometheus_api(url: str, path: str, **params: str) -> Any:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    with urllib.request.urlopen(f"{url}{path}{query}", timeout=5) as answer:
        body = json.loads(answer.read())
    assert body["status"] == "success", body
    return body["data"]


def heights(url: str) -> dict[str, float]:
    """``seqnet_height`` per validator label, as Prometheus last scraped it."""
    result = prometheus_api(url, "/api/v1/query", query='seqnet_height{job="seqnet"}')["result"]
    return {r["metric"]["validator"]: float(r["value"][1]) for r in result}


def firing(url: str) -> set[tuple[str, str]]:
    """(alert name, validator label or "") of every firing alert."""
    return {
        (a["labels"]["alertname"], a["labels"].get("validator", ""))
        for a in prometheus_api(url, "/api/v1/alerts")["alerts"]
        if a["state"] == "firing"
    }


def poll(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {seconds}s waiting for {what}"
        time.sleep(0.25)


@pytest.mark.skipif(PROMETHEUS is None, reason=NO_PROMETHEUS)
def test_prometheus_scrapes_a_cluster_and_fires_quorum_lost_when_two_die(
    tmp_path: pathlib.Path,
) -> None:
    assert PROMETHEUS is not None
    cluster = Processes(tmp_path / "net", 4)
    monitoring.write_bundle(cluster.dir, interval_s=1)
    prometheus = None
    cluster.start_all()
    try:
        prometheus = server.start(cluster.dir, free_base_port(1), PROMETHEUS)
        cluster.wait_committing(60)
        prometheus.wait_ready()
        url = prometheus.url
        poll(lambda: set(heights(url)) == {"0", "1", "2", "3"}, 20, "all 4 heights scraped")
        first = heights(url)
        poll(
            lambda: all(h > first[v] for v, h in heights(url).items()),
            20,
            "every validator's height to advance",
        )
        assert firing(url) == set()
        cluster.kill(0)
        cluster.kill(1)
        expected = {
            ("SeqnetQuorumLost", ""),
            ("SeqnetValidatorDown", "0"),
            ("SeqnetValidatorDown", "1"),
        }
        poll(lambda: expected <= firing(url), 30, f"{expected} firing")
        assert ("SeqnetValidatorDown", "2") not in firing(url)
    finally:
        if prometheus is not None:
            prometheus.stop()
        cluster.stop_all()


# ---------------------------------------------------------------- cluster up --prometheus


@pytest.fixture
def foreground(tmp_path: pathlib.Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """`cluster up` processes started by a test, in their own session; killed at the end."""
    started: list[subprocess.Popen[bytes]] = []
    try:
        yield started
    finally:
        for proc in started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _up(
    directory: pathlib.Path, out: pathlib.Path, *extra: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    base = free_base_port(4, (0, 1000, 2000))
    cmd = seqnet("cluster", "up", "--dir", str(directory), "--base-port", str(base), *extra)
    with out.open("wb") as sink:
        return subprocess.Popen(
            cmd, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )


@pytest.mark.skipif(PROMETHEUS is None, reason=NO_PROMETHEUS)
def test_cluster_up_runs_prometheus_and_stops_it_on_ctrl_c(
    tmp_path: pathlib.Path, foreground: list[subprocess.Popen[bytes]]
) -> None:
    port, out = free_base_port(1), tmp_path / "up.out"
    directory = tmp_path / "net"
    up = _up(
        directory, out, "--prometheus", "--prometheus-port", str(port), "--scrape-interval", "1"
    )
    foreground.append(up)
    url = f"http://127.0.0.1:{port}"
    poll(lambda: f"prometheus {url}" in out.read_text() or up.poll() is not None, 60, "its URL")
    assert f"monitoring: prometheus.yml, alerts.yml, grafana-dashboard.json in {directory}" in (
        out.read_text()
    )

    def all_up() -> bool:
        targets = prometheus_api(url, "/api/v1/targets")["activeTargets"]
        return len(targets) == 4 and all(t["health"] == "up" for t in targets)

    poll(all_up, 15, "all 4 targets up")
    assert (directory / server.STORAGE).is_dir()
    os.killpg(up.pid, signal.SIGINT)  # the terminal's Ctrl-C, to the whole process group
    assert up.wait(timeout=60) == 0, out.read_text()
    text = out.read_text()
    assert "stopped 4 validators" in text and "stopped prometheus (exit code 0)" in text
    with pytest.raises(OSError):
        urllib.request.urlopen(url + "/-/ready", timeout=2)


def test_cluster_up_without_the_binary_says_so_and_goes_on(
    tmp_path: pathlib.Path, foreground: list[subprocess.Popen[bytes]]
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    out = tmp_path / "up.out"
    env = dict(os.environ, PATH=str(empty))  # python is started by its full path
    up = _up(tmp_path / "net", out, "--prometheus", env=env)
    foreground.append(up)
    poll(lambda: "validators committing; Ctrl-C stops them" in out.read_text(), 60, "nodes")
    text = out.read_text()
    assert "--prometheus: no `prometheus` on PATH, going on without it" in text
    assert "apt-get install prometheus" in text
    assert "prometheus http://" not in text
    os.killpg(up.pid, signal.SIGINT)
    assert up.wait(timeout=60) == 0, out.read_text()


def test_cluster_up_refuses_prometheus_with_detach(tmp_path: pathlib.Path) -> None:
    done = subprocess.run(
        seqnet("cluster", "up", "--dir", str(tmp_path / "net"), "--detach", "--prometheus"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "not with --detach" in done.stderr
    assert not (tmp_path / "net").exists()


@pytest.mark.skipif(PROMETHEUS is None, reason=NO_PROMETHEUS)
def test_cluster_up_refuses_a_taken_prometheus_port_before_starting_nodes(
    tmp_path: pathlib.Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        directory = tmp_path / "net"
        done = subprocess.run(
            [
                *seqnet("cluster", "up", "--dir", str(directory), "--prometheus"),
                *("--prometheus-port", str(port)),
                *("--base-port", str(free_base_port(4, (0, 1000, 2000)))),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"port 127.0.0.1:{port} for Prometheus is in use" in done.stderr
    assert not list(directory.glob("node-*.log"))  # no node was started


def test_cluster_up_help_explains_every_new_option() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sequencer_net.cli", "cluster", "up", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0
    for option in ("--prometheus ", "--prometheus-port PORT", "--scrape-interval SECONDS"):
        assert option in done.stdout
    assert "grafana-dashboard.json" in done.stdout
