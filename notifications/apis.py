"""Alert preferences API: each member chooses, per alert kind, on / silent / off."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.apis import ERRORS
from notifications import services
from notifications.models import Alert, AlertPreference


class AlertPreferencesInput(serializers.Serializer):
    """``{kind: mode, ...}``: any subset of the kinds; an unknown kind is an error."""

    def get_fields(self) -> dict[str, serializers.Field]:
        return {kind: serializers.ChoiceField(choices=AlertPreference.Mode.choices,
                                              required=False)
                for kind in Alert.Kind.values}

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(k) for k in data if k not in Alert.Kind.values)
            if unknown:
                raise serializers.ValidationError(
                    {k: [f"Unknown alert kind; one of {Alert.Kind.values}."] for k in unknown})
        return super().to_internal_value(data)


PREFERENCES_OUTPUT = inline_serializer("AlertPreferences", fields={
    kind: serializers.ChoiceField(choices=AlertPreference.Mode.choices)
    for kind in Alert.Kind.values})


class AlertPreferencesApi(APIView):
    @extend_schema(responses={200: PREFERENCES_OUTPUT, 401: ERRORS[401]},
                   summary="My mode for every alert kind (on, silent or off)")
    def get(self, request: Request) -> Response:
        return Response(services.alert_preferences_get(user=request.user))

    @extend_schema(request=AlertPreferencesInput,
                   responses={200: PREFERENCES_OUTPUT,
                              400: ERRORS[400],
                              401: ERRORS[401]},
                   summary="Set my mode for some alert kinds (the others keep theirs)")
    def put(self, request: Request) -> Response:
        data = AlertPreferencesInput(data=request.data)
        data.is_valid(raise_exception=True)
        return Response(services.alert_preferences_set(user=request.user,
                                                       modes=dict(data.validated_data)))
