from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from config import health, views
from dashboard import views as dashboard_views
from notifications import views as mini_app

admin.site.site_header = "Trading back office"
admin.site.site_title = "Back office"
# JSON {"code", "message", "detail"} under /api/, Django's pages elsewhere.
handler404 = "config.views.not_found"
handler500 = "config.views.server_error"

urlpatterns = [
    path("", views.index, name="index"),
    path("healthz", health.healthz, name="healthz"),
    path("livez", health.livez, name="livez"),
    path("app/", mini_app.mini_app, name="mini-app"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("config.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    # GET /metrics: django-prometheus's export plus the database gauges
    path("metrics", dashboard_views.metrics, name="prometheus-django-metrics"),
]
