"""Demo polish (issue 16): the banner prints where web really listens (``WEB_BIND``) and
the worker's real metrics port; the set-up writes a ``TELEGRAM_BOT_TOKEN`` placeholder so
/auth/telegram can be tried. The scripts' own lines are run, in a scratch directory."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _between(text: str, start: str, end: str) -> str:
    lines = text.splitlines()
    first = next(i for i, line in enumerate(lines) if line.startswith(start))
    last = next(i for i in range(first + 1, len(lines)) if lines[i] == end)
    return "\n".join(lines[first:last + 1]) + "\n"


def banner(tmp_path: Path, **env: str) -> str:
    (tmp_path / "var").mkdir(exist_ok=True)
    (tmp_path / "var" / "demo_seed.log").write_text("mini app member: m1\n")
    (tmp_path / ".env").write_text("DEMO_OWNER_PASSWORD=o\nDEMO_MEMBER_PASSWORD=m\n"
                                   "FLOWER_BASIC_AUTH=flower:f\n")
    script = _between((ROOT / "scripts" / "demo").read_text(), "MEMBER=$(", "TXT")
    result = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, env={"PATH": "/usr/bin:/bin", **env}, check=True)
    return result.stdout


def test_the_banner_prints_the_default_addresses(tmp_path):
    out = banner(tmp_path)
    assert "http://127.0.0.1:8000/admin/" in out
    assert "worker: http://127.0.0.1:9808/metrics" in out


def test_the_banner_follows_web_bind_and_the_metrics_port(tmp_path):
    out = banner(tmp_path, WEB_BIND="0.0.0.0:8123", CELERY_METRICS_PORT="9911")
    assert "http://127.0.0.1:8123/admin/" in out and "http://127.0.0.1:8123/app/" in out
    assert "http://127.0.0.1:8123/metrics" in out
    assert "worker: http://127.0.0.1:9911/metrics" in out
    assert ":8000" not in out and "9808" not in out
    out = banner(tmp_path, WEB_BIND="192.168.1.5:9000")
    assert "http://192.168.1.5:9000/api/docs/" in out


def test_the_setup_writes_a_telegram_bot_token_placeholder_once(tmp_path):
    line = next(line for line in (ROOT / "scripts" / "setup").read_text().splitlines()
                if line.startswith("grep -q '^TELEGRAM_BOT_TOKEN='"))
    env_file = tmp_path / ".env"
    env_file.write_text("SECRET_KEY=x\n")
    for _ in range(2):
        subprocess.run(["bash", "-c", line], cwd=tmp_path, check=True)
    tokens = [t for t in env_file.read_text().splitlines()
              if t.startswith("TELEGRAM_BOT_TOKEN=")]
    assert len(tokens) == 1 and tokens[0].split("=", 1)[1]
    env_file.write_text("TELEGRAM_BOT_TOKEN=mine\n")
    subprocess.run(["bash", "-c", line], cwd=tmp_path, check=True)
    assert env_file.read_text() == "TELEGRAM_BOT_TOKEN=mine\n"
