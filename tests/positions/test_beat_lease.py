"""One beat at a time: the lease decides who sends, a second beat idles and says why, and
takes over when the first one stops."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from positions.models import BeatLease
from positions.services import beat_lease_hold, beat_lease_release
from tests.conftest import ROOT


@pytest.mark.django_db
def test_the_lease_has_one_holder_until_it_expires():
    assert beat_lease_hold(holder="a", seconds=15)
    assert not beat_lease_hold(holder="b", seconds=15)
    assert beat_lease_hold(holder="a", seconds=15)  # renewed
    BeatLease.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    assert beat_lease_hold(holder="b", seconds=15)  # a stopped renewing: b takes over
    assert not beat_lease_hold(holder="a", seconds=15)
    beat_lease_release(holder="a")  # not a's to give
    assert BeatLease.objects.get().holder == "b"
    beat_lease_release(holder="b")
    assert beat_lease_hold(holder="a", seconds=15)


def start_beat(tmp_path, name: str) -> subprocess.Popen:
    db = connection.settings_dict
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "CELERY_BROKER_URL": "memory://",
        "VAR_DIR": str(tmp_path),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "warning",
         "--schedule", str(tmp_path / f"{name}.db")],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_second_beat_idles_and_takes_over_when_the_first_stops(tmp_path):
    first = start_beat(tmp_path, "first")
    try:
        deadline = time.monotonic() + 30
        while not BeatLease.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        holder = BeatLease.objects.get().holder
        assert f":{first.pid}:" in holder
        second = start_beat(tmp_path, "second")
        try:
            time.sleep(8)
            assert BeatLease.objects.get().holder == holder  # the first one keeps sending
            first.terminate()
            first.wait(timeout=30)
            # a clean stop gives the lease up: the second takes it at its next look (5 s)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                lease = BeatLease.objects.filter().first()
                if lease is not None and f":{second.pid}:" in lease.holder:
                    break
                time.sleep(0.5)
            else:
                raise AssertionError("the second beat never took over")
        finally:
            second.terminate()
            _, err = second.communicate(timeout=30)
        assert "idles: another beat holds the lease" in err
    finally:
        if first.poll() is None:
            first.kill()
