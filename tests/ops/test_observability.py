"""The operator's files against the product: every metric a Grafana panel or an alert rule
queries is one ``/metrics`` really serves (scraped here from the running test server), every
rule says what it means and links its runbook in the README, and Prometheus's own
``promtool`` accepts the rules and passes their unit tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from django.utils import timezone

from guards.models import AccountGuardState, CloseRequest, LiquidationEpisode
from notifications.models import Alert
from positions.models import DispatcherHeartbeat
from tests.factories import TradingAccountFactory

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus" / "rules.yml"
RULES_TEST = ROOT / "ops" / "prometheus" / "rules_test.yml"
GRAFANA = ROOT / "ops" / "grafana" / "backoffice.json"
README = ROOT / "README.md"

# PromQL words that are not metric names (functions are told apart by their "(").
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                "unless", "bool", "offset", "le", "inf", "nan"}
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum",
                                                             "_created"),
            "summary": ("_count", "_sum", "_created"), "gauge": ()}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)
    names = re.findall(r"(?<![\w:.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr)
    return {n for n in names if n.lower() not in PROMQL_WORDS}


def exported_names(text: str) -> set[str]:
    """Every sample name a /metrics page can carry: from its TYPE lines (a labelled metric
    not observed yet has no sample, only its TYPE)."""
    names = set()
    for match in re.finditer(r"^# TYPE (\S+) (\w+)$", text, re.MULTILINE):
        name, kind = match.groups()
        names.add(name)
        base = name.removesuffix("_total") if kind == "counter" else name
        names.update(base + suffix for suffix in SUFFIXES.get(kind, ()))
    return names


def grafana_exprs() -> list[tuple[str, str]]:
    dashboard = json.loads(GRAFANA.read_text())
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"]
            for target in panel["targets"]]


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text())["groups"]
            for rule in group["rules"]]


def test_metric_names_are_read_from_promql():
    assert metric_names(
        'histogram_quantile(0.95, sum by (le, queue) (rate(a_bucket{queue="x"}[5m]))) > 5 '
        'or max(b_seconds) unless absent(c) and on(job) d offset 5m') == {
        "a_bucket", "b_seconds", "c", "d"}


@pytest.fixture
def busy_platform(db, member):
    """A platform with something in every state the gauges report (an age is exported
    only while there is something to be old)."""
    now = timezone.now()
    account = TradingAccountFactory(user=member, last_synced_at=now - timedelta(seconds=42))
    DispatcherHeartbeat.objects.create(name="sync", ticks=5, last_tick_at=now)
    AccountGuardState.objects.create(account=account, level="critical")
    episode = LiquidationEpisode.objects.create(account=account, reason="drawdown",
                                                started_at=now - timedelta(minutes=6),
                                                recheck_at=now, status="liquidating")
    CloseRequest.objects.create(account=account, ticket=1, key=f"episode:{episode.pk}",
                                episode=episode, reason="drawdown")
    Alert.objects.create(user=member, account=account, kind="drawdown_warning", text="x",
                         created_at=now, due_at=now - timedelta(seconds=30))
    return account


@pytest.fixture
def metrics_page(client, busy_platform) -> str:
    client.get("/healthz")  # one request through the middleware, so its series exist too
    response = client.get("/metrics")
    assert response.status_code == 200
    return response.content.decode()


@pytest.fixture
def scraped(metrics_page) -> set[str]:
    return exported_names(metrics_page)


def test_the_database_gauges_report_the_state(metrics_page):
    samples = dict(re.findall(r"^(backoffice_[^ ]+) (\S+)$", metrics_page, re.MULTILINE))
    assert samples['backoffice_accounts{sync_status="healthy"}'] == "1.0"
    assert samples['backoffice_accounts{sync_status="stale"}'] == "0.0"
    assert samples['backoffice_guard_accounts{level="critical"}'] == "1.0"
    assert samples['backoffice_close_requests{status="pending"}'] == "1.0"
    assert samples["backoffice_liquidation_episodes_running"] == "1.0"
    assert samples["backoffice_alerts_overdue"] == "1.0"
    assert 42 <= float(samples["backoffice_last_sync_age_seconds"]) < 60
    assert 360 <= float(samples["backoffice_liquidation_episode_oldest_age_seconds"]) < 400
    assert 30 <= float(samples["backoffice_alerts_oldest_overdue_seconds"]) < 60
    assert samples["backoffice_database_up"] == "1.0"


def test_every_grafana_panel_queries_metrics_the_product_exports(scraped):
    exprs = grafana_exprs()
    titles = {title for title, _ in exprs}
    for needed in ("Sync rate", "Sync read duration", "Accounts by sync status",
                   "Accounts by guard level", "Closes by outcome", "Alerts delivered / failed",
                   "API latency (p95 by view)"):
        assert needed in titles
    missing = {(title, name) for title, expr in exprs for name in metric_names(expr)
               if name not in scraped}
    assert not missing, f"panels query metrics /metrics does not serve: {sorted(missing)}"


def test_every_alert_rule_queries_metrics_the_product_exports(scraped):
    missing = {(rule["alert"], name) for rule in rules() for name in metric_names(rule["expr"])
               if name not in scraped}
    assert not missing, f"rules query metrics /metrics does not serve: {sorted(missing)}"


def test_every_rule_has_a_summary_and_a_runbook_section_in_the_readme():
    headings = {re.sub(r"[^a-z0-9 _-]", "", h.strip().lower()).replace(" ", "-")
                for h in re.findall(r"^#+ (.+)$", README.read_text(), re.MULTILINE)}
    names = [rule["alert"] for rule in rules()]
    assert len(names) == len(set(names)) >= 8
    for rule in rules():
        annotations = rule["annotations"]
        assert annotations["summary"], rule["alert"]
        page, _, anchor = annotations["runbook"].partition("#")
        assert page == "README.md" and anchor in headings, (rule["alert"], anchor)


def _promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        reason = "promtool (Debian package prometheus) is not installed"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true: {reason}")
        pytest.skip(reason)
    return path


@pytest.mark.parametrize("command", [["check", "rules", str(RULES)],
                                     ["test", "rules", str(RULES_TEST)],
                                     ["check", "config", str(RULES.with_name("prometheus.yml"))]],
                         ids=["check", "test", "config"])
def test_promtool_accepts_the_rules(command):
    result = subprocess.run([_promtool(), *command], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
