"""Alert tasks, on the ``notify`` queue (CELERY_TASK_ROUTES). Both are safe to run twice:
delivery claims its row with a conditional update, the sweeper only re-enqueues."""

from __future__ import annotations

from celery import shared_task

from notifications import services


# The retry policy (which errors, how long, how many calls) is the service's and is
# counted on the row, so a re-enqueued or redelivered task keeps the count, and a wait
# for the rate limit is not an attempt: the task only queues itself again when told to,
# instead of sleeping in a worker. Lease (60 s) > time_limit (45 s).
@shared_task(acks_late=True, soft_time_limit=30, time_limit=45)
def deliver_alert(alert_id: int) -> str:
    result = services.alert_deliver(alert_id=int(alert_id))
    if result.retry_in is not None:
        deliver_alert.apply_async(args=[int(alert_id)], countdown=result.retry_in)
    return result.outcome


@shared_task(soft_time_limit=60, time_limit=90)
def alerts_sweep() -> int:
    return services.alerts_sweep()
