"""No input reaches a 500: deep JSON is 400, big bodies 413, unknown /api/ routes a JSON
404, a wrong method a JSON 405, a crash under /api/ a JSON 500, each as
``{"code", "message", "detail"}`` (issue 16)."""

from __future__ import annotations

import json

import pytest
from django.test import Client

pytestmark = pytest.mark.django_db

ANONYMOUS = ["/api/v1/auth/token", "/api/v1/auth/token/refresh", "/api/v1/auth/telegram"]
# (the signed EA push, /devices/sync, is checked signed in tests/positions/test_device_push.py:
# an unsigned body is 401 before it is parsed)
POSTS = [*ANONYMOUS, "/api/v1/accounts", "/api/v1/risk/position-size",
         "/api/v1/guards/manual-close", "/api/v1/risk/config", "/api/v1/trades", "/api/v1/devices",
         "/api/v1/alerts/preferences"]


def _error_shape(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"code", "message", "detail"}
    assert body["code"] == code
    return body


@pytest.mark.parametrize("path", ANONYMOUS)
def test_deeply_nested_json_is_400_without_a_login(path):
    # 1,000 levels in 2 KB: Python's json recursed until RecursionError, an HTML 500.
    body = "[" * 1000 + "]" * 1000
    response = Client().post(path, body, content_type="application/json")
    _error_shape(response, 400, "json_too_deep")


@pytest.mark.parametrize("path", POSTS)
def test_deeply_nested_json_is_400_signed_in(path, owner_api):
    body = '{"a":' * 200 + "1" + "}" * 200
    response = owner_api.generic("PUT" if path.endswith("preferences") else "POST", path,
                                 body, content_type="application/json")
    _error_shape(response, 400, "json_too_deep")


def test_nesting_under_the_limit_still_parses(owner_api):
    body = {"setup": [[[[["x"]]]]]}
    response = owner_api.post("/api/v1/risk/position-size", body, format="json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid"


def test_brackets_inside_strings_do_not_count(anon_api):
    body = json.dumps({"username": "[" * 150, "password": "{" * 4000})
    response = anon_api.post("/api/v1/auth/token", body, content_type="application/json")
    assert response.status_code == 401


def test_an_overlong_username_is_400_not_500(anon_api):
    # django-axes records failed sign-ins; 5,000 characters overflowed its column (a 500)
    body = json.dumps({"username": "u" * 5000, "password": "x"})
    response = anon_api.post("/api/v1/auth/token", body, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["detail"]["username"]


@pytest.mark.parametrize("path", POSTS)
def test_a_1_mb_body_is_413(path, owner_api):
    body = json.dumps({"login": 1, "password": "x" * 1_000_000, "server": "s",
                       "init_data": "y", "position_id": 1, "reason": "r"})
    response = owner_api.generic("PUT" if path.endswith("preferences") else "POST", path,
                                 body, content_type="application/json")
    body = _error_shape(response, 413, "body_too_large")
    assert body["detail"]["max_bytes"] > 0


def test_a_1_mb_body_is_413_without_a_login():
    response = Client().post("/api/v1/auth/token", "x" * 1_000_000,
                             content_type="application/json")
    _error_shape(response, 413, "body_too_large")


def test_a_body_that_lies_about_its_length_is_413(settings, owner_api):
    """The parser reads at most the cap (plus one byte), whatever Content-Length says."""
    from io import BytesIO

    from config.errors import ApplicationError
    from config.parsers import LimitedJSONParser

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    with pytest.raises(ApplicationError) as caught:
        LimitedJSONParser().parse(BytesIO(b'"' + b"x" * 5000 + b'"'), "application/json", {})
    assert caught.value.status_code == 413


def test_unknown_api_route_is_a_json_404():
    response = Client().get("/api/v1/no-such-thing")
    _error_shape(response, 404, "not_found")
    response = Client().get("/api/nothing/here")
    _error_shape(response, 404, "not_found")


def test_wrong_method_is_a_json_405(owner_api):
    response = owner_api.delete("/api/v1/positions")
    _error_shape(response, 405, "method_not_allowed")


def test_a_crash_under_api_is_a_json_500(rf):
    from config.views import api_server_error

    response = api_server_error(rf.get("/api/v1/positions"))
    assert response.status_code == 500
    assert set(json.loads(response.content)) == {"code", "message", "detail"}


def test_an_unhandled_exception_in_an_api_view_is_a_json_500(owner_api, monkeypatch):
    from positions import apis

    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(apis.PrimaryPositionsApi, "get", boom)
    owner_api.raise_request_exception = False
    response = owner_api.get("/api/v1/positions")
    _error_shape(response, 500, "server_error")


def test_pages_outside_api_keep_html_404():
    response = Client().get("/no-such-page")
    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")
