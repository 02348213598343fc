"""The project's URLs plus the bare baseline view of bench/api_bench.py.

The bench route comes last, so the bare view pays for the same URL resolution walk as
``/api/v1/positions`` (and a little more).
"""

from __future__ import annotations

from django.urls import path

from bench import bare
from config.urls import urlpatterns as project_urlpatterns

urlpatterns = [
    *project_urlpatterns,
    path("bench/bare-positions", bare.positions, name="bench-bare-positions"),
]
