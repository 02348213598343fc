from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from config.events import alert_raised
        from notifications.services import alert_outbox_receiver

        # The pipeline steps raise alerts through config.events; the outbox writes them.
        alert_raised.connect(alert_outbox_receiver, dispatch_uid="notifications.outbox")
