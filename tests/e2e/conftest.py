"""Fixtures of the end-to-end tests: a Redis broker for real Celery workers."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import redis
from celery import Celery
from kombu import Connection

ROOT = Path(__file__).resolve().parents[2]
REDIS_BROKER = "redis://127.0.0.1:6379/14"


def redis_up() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture
def redis_broker():
    if not redis_up():
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true: this test needs Redis on 127.0.0.1:6379")
        pytest.skip("needs Redis on 127.0.0.1:6379")
    client = redis.Redis.from_url(REDIS_BROKER)
    client.flushdb()
    yield Producer()
    client.flushdb()


class Producer:
    """Sends tasks by name to the Redis broker (CELERY_BROKER_URL in this process is
    memory://, and Celery lets that variable win over any app setting)."""

    def __init__(self) -> None:
        self.app = Celery("producer")

    def send_task(self, name: str, **kwargs) -> None:
        with Connection(REDIS_BROKER) as conn:
            self.app.send_task(name, connection=conn, **kwargs)
