"""The code passes ruff with the project's rules (pyproject.toml), McCabe complexity ≤ 12
included, so a rule broken anywhere fails the test command the README names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_passes_with_complexity_at_most_12():
    ruff = Path(sys.executable).parent / "ruff"
    result = subprocess.run([str(ruff), "check", "--no-cache", "."], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]


def test_the_complexity_rule_is_on():
    settings = (ROOT / "pyproject.toml").read_text()
    assert '"C90"' in settings and "max-complexity = 12" in settings
