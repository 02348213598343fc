from django.apps import AppConfig


class PositionsConfig(AppConfig):
    name = "positions"
    verbose_name = "Positions and sync"

    def ready(self) -> None:
        from positions import metrics  # noqa: F401 - registers the sync metrics
