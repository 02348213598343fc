"""Alert preferences: the API (GET every kind with my mode, PUT some kinds), its
validation, and that one member's choices are theirs alone. Mostly through the view itself
(APIRequestFactory), once through the routed URL with a real JWT."""

from __future__ import annotations

import pytest
from rest_framework.test import APIRequestFactory, force_authenticate

from notifications.apis import AlertPreferencesApi
from notifications.models import Alert, AlertPreference
from notifications.services import alert_enqueue, alert_preferences_get

pytestmark = pytest.mark.django_db

URL = "/api/v1/alerts/preferences"
ALL_ON = {kind: "on" for kind in Alert.Kind.values}


def call(method: str, user=None, data=None):
    factory = APIRequestFactory()
    request = getattr(factory, method)(URL, data=data, format="json")
    if user is not None:
        force_authenticate(request, user=user)
    return AlertPreferencesApi.as_view()(request)


def test_every_kind_is_on_until_chosen(member):
    response = call("get", member)
    assert response.status_code == 200
    assert response.data == ALL_ON
    assert len(response.data) == 12  # push_rejected: issue 16


def test_put_sets_some_kinds_and_returns_all(member):
    response = call("put", member, {"market": "silent", "account_stale": "off"})
    assert response.status_code == 200
    assert response.data == {**ALL_ON, "market": "silent", "account_stale": "off"}
    # a second PUT changes what it names and keeps the rest
    response = call("put", member, {"account_stale": "on", "close_failed": "silent"})
    assert response.data == {**ALL_ON, "market": "silent", "close_failed": "silent"}
    assert call("get", member).data == response.data
    assert AlertPreference.objects.filter(user=member).count() == 3


@pytest.mark.parametrize("body", [
    {"nope": "on"},
    {"market": "loud"},
    {"market": "off", "nope": "off"},
    ["market", "off"],
])
def test_an_unknown_kind_or_mode_is_a_400_and_changes_nothing(member, body):
    response = call("put", member, body)
    assert response.status_code == 400
    assert response.data["code"] == "invalid"
    assert not AlertPreference.objects.exists()


def test_anonymous_is_refused():
    assert call("get").status_code == 401
    assert call("put", data={"market": "off"}).status_code == 401


def test_my_choices_are_mine_alone(member, stranger):
    call("put", member, {"market": "off", "drawdown_warning": "silent"})
    assert call("get", stranger).data == ALL_ON
    assert alert_enqueue(user=member, kind="market", text="gap") is None
    mine = alert_enqueue(user=member, kind="drawdown_warning", text="16 %")
    theirs = alert_enqueue(user=stranger, kind="market", text="gap")
    assert mine is not None and mine.silent is True
    assert theirs is not None and theirs.silent is False


def test_reads_are_one_query(member, django_assert_num_queries):
    AlertPreference.objects.create(user=member, kind="market", mode="silent")
    with django_assert_num_queries(1):
        assert alert_preferences_get(user=member)["market"] == "silent"
    with django_assert_num_queries(2):  # the preference, the insert
        alert_enqueue(user=member, kind="market", text="gap")


def test_the_routed_endpoint_with_a_real_token(api, stranger_api, anon_api):
    response = api.put(URL, {"period_rule": "silent"}, format="json")
    assert response.status_code == 200
    assert response.json()["period_rule"] == "silent"
    assert api.get(URL).json()["period_rule"] == "silent"
    assert stranger_api.get(URL).json() == ALL_ON  # another member's modes are theirs
    assert anon_api.get(URL).status_code == 401
