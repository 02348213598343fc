"""Settings for bench/api_bench.py: the project's settings, plus the bench's bare view.

Only what the benchmark needs differs from ``config.settings``: the URLconf (which adds
``/bench/bare-positions``), DEBUG off whatever the environment says, the hosts wrk and
urllib use, and access tokens that outlive the run.
"""

from __future__ import annotations

from datetime import timedelta

from config.settings import *  # noqa: F403
from config.settings import SIMPLE_JWT as _PROJECT_SIMPLE_JWT

ROOT_URLCONF = "bench.urls"
DEBUG = False
# plain http on loopback: no TLS redirect (HTTPS is on by default with DEBUG off)
SECURE_SSL_REDIRECT = False
METRICS_AUTH_REQUIRED = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
# One token per member is minted before the run and reused for all of it.
SIMPLE_JWT = {**_PROJECT_SIMPLE_JWT, "ACCESS_TOKEN_LIFETIME": timedelta(days=1)}
