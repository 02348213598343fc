"""Production settings (issue 16): ``check --deploy`` is clean with DEBUG off and nothing
but the required secrets set; HTTPS settings come from the environment; /metrics answers
only a scrape with the configured bearer token or basic auth."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent


def _production_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in {"HTTPS", "DEBUG"} and not k.startswith(("SECURE_", "SESSION_COOKIE",
                                                                  "CSRF_COOKIE", "METRICS_"))}
    env.update(SECRET_KEY="p" * 20 + "-a-long-random-production-secret-0123456789-xyz",
               DJANGO_SETTINGS_MODULE="config.settings", **extra)
    return env


def test_check_deploy_is_clean_under_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=_production_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def _setting(name: str, **env: str) -> str:
    code = f"import django; django.setup(); from django.conf import settings; " \
           f"print(repr(getattr(settings, {name!r}, None)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT,
                            env=_production_env(**env), capture_output=True, text=True,
                            timeout=60, check=True)
    return result.stdout.strip()


def test_https_settings_are_on_by_default_and_follow_the_environment():
    assert _setting("SECURE_SSL_REDIRECT") == "True"
    assert _setting("SECURE_HSTS_SECONDS") == "31536000"
    assert _setting("SESSION_COOKIE_SECURE") == "True"
    assert _setting("CSRF_COOKIE_SECURE") == "True"
    assert _setting("SECURE_PROXY_SSL_HEADER") == "('HTTP_X_FORWARDED_PROTO', 'https')"
    assert _setting("SECURE_SSL_REDIRECT", SECURE_SSL_REDIRECT="false") == "False"
    assert _setting("SECURE_HSTS_SECONDS", SECURE_HSTS_SECONDS="60") == "60"
    assert _setting("SESSION_COOKIE_SECURE", DEBUG="true") == "False"
    assert _setting("SECURE_PROXY_SSL_HEADER", HTTPS="false") == "None"


@pytest.mark.django_db
def test_metrics_need_the_bearer_token(settings):
    settings.METRICS_BEARER_TOKEN = "scrape-token-123"
    assert Client().get("/metrics").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    ok = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-token-123")
    assert ok.status_code == 200 and b"# HELP" in ok.content


@pytest.mark.django_db
def test_metrics_accept_basic_auth(settings):
    settings.METRICS_BASIC_AUTH = "prometheus:s3cret"
    good = base64.b64encode(b"prometheus:s3cret").decode()
    bad = base64.b64encode(b"prometheus:nope").decode()
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Basic {bad}").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Basic !!!").status_code == 401
    assert Client().get("/metrics", HTTP_AUTHORIZATION=f"Basic {good}").status_code == 200


@pytest.mark.django_db
def test_metrics_are_refused_in_production_until_credentials_are_set(settings):
    settings.METRICS_AUTH_REQUIRED = True
    response = Client().get("/metrics")
    assert response.status_code == 403
    assert response.json()["code"] == "metrics_not_configured"
