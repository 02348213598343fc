from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The owner's and the operator's views: the risk dashboard on the admin index and the
    gauges Prometheus reads from the database. Reads only, across every app (it sits on
    top of them: nothing below imports it)."""

    name = "dashboard"
    verbose_name = "Risk dashboard"
