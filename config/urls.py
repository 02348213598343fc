from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from config import health, views

admin.site.site_header = "Trading back office"
admin.site.site_title = "Back office"

urlpatterns = [
    path("", views.index, name="index"),
    path("healthz", health.healthz, name="healthz"),
    path("admin/", admin.site.urls),
    path("", include("django_prometheus.urls")),  # GET /metrics
]
