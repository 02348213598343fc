"""config.ratelimit.once_per: one action per key per window, on the real cache (Redis under
scripts/test), with the 429 body and Retry-After header the API answers."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from django.core.cache import cache

from config import ratelimit
from config.errors import ApplicationError
from config.ratelimit import once_per


@pytest.fixture
def key():
    """A key no other test (or process sharing this Redis db) uses; removed afterwards."""
    name = f"test-ratelimit:{uuid.uuid4().hex}"
    yield name
    cache.delete(name)


def test_the_first_call_passes_and_the_second_is_429_with_retry_after(key):
    once_per(key, 30, message="One manual close per symbol per 30 s.")
    with pytest.raises(ApplicationError) as refused:
        once_per(key, 30, message="One manual close per symbol per 30 s.")
    error = refused.value
    assert error.status_code == 429
    assert error.code == "rate_limited"
    assert error.message == "One manual close per symbol per 30 s."
    assert 1 <= error.detail["retry_after"] <= 30
    assert error.headers == {"Retry-After": str(error.detail["retry_after"])}


def test_the_code_can_be_named(key):
    once_per(key, 30, message="slow down")
    with pytest.raises(ApplicationError) as refused:
        once_per(key, 30, message="slow down", code="refresh_limited")
    assert refused.value.code == "refresh_limited"


def test_retry_after_is_the_whole_seconds_left_not_one_more(key, monkeypatch):
    # the window ends at t0 + 10; asked at t0 + 4 exactly, 6 s are left: 6, not 7
    t0 = 1_700_000_000.0
    monkeypatch.setattr(ratelimit.time, "time", lambda: t0)
    once_per(key, 10, message="wait")
    monkeypatch.setattr(ratelimit.time, "time", lambda: t0 + 4)
    with pytest.raises(ApplicationError) as refused:
        once_per(key, 10, message="wait")
    assert refused.value.detail == {"retry_after": 6}
    # 4.5 s in: 5.5 s left, rounded up to 6
    monkeypatch.setattr(ratelimit.time, "time", lambda: t0 + 4.5)
    with pytest.raises(ApplicationError) as again:
        once_per(key, 10, message="wait")
    assert again.value.headers == {"Retry-After": "6"}


def test_retry_after_is_at_least_one_second(key, monkeypatch):
    # the key is still held at the very end of its window (cache expiry lags the clock)
    t0 = 1_700_000_000.0
    monkeypatch.setattr(ratelimit.time, "time", lambda: t0)
    once_per(key, 10, message="wait")
    monkeypatch.setattr(ratelimit.time, "time", lambda: t0 + 10.5)
    with pytest.raises(ApplicationError) as refused:
        once_per(key, 10, message="wait")
    assert refused.value.detail == {"retry_after": 1}


def test_keys_are_independent(key):
    other = f"{key}:other"
    try:
        once_per(key, 30, message="wait")
        once_per(other, 30, message="wait")  # another account or symbol: not limited
        with pytest.raises(ApplicationError):
            once_per(other, 30, message="wait")
    finally:
        cache.delete(other)


def test_the_key_is_free_again_once_the_window_ends(key):
    once_per(key, 1, message="wait")
    with pytest.raises(ApplicationError):
        once_per(key, 1, message="wait")
    time.sleep(1.2)
    once_per(key, 1, message="wait")


def test_of_many_racing_calls_exactly_one_passes(key):
    # the claim is one atomic add: a get-then-set would let several threads through
    passed: list[int] = []
    refused: list[int] = []
    start = threading.Barrier(8)

    def call(n: int) -> None:
        start.wait()
        try:
            once_per(key, 30, message="wait")
        except ApplicationError:
            refused.append(n)
        else:
            passed.append(n)

    threads = [threading.Thread(target=call, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(passed) == 1
    assert len(refused) == 7
