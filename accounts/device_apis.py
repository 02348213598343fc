"""Device keys for EA push (/api/v1/devices). The signed push itself is a read: it
goes through the pipeline (pipeline/apis.py)."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import access, services
from accounts.apis import ERRORS
from accounts.models import DeviceKey
from config.api import parse_id


class DeviceKeyInput(serializers.Serializer):
    account_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    name = serializers.CharField(max_length=64)


class DeviceKeyOutput(serializers.ModelSerializer):
    class Meta:
        model = DeviceKey
        fields = ["id", "account", "name", "key_id", "fingerprint", "created_at",
                  "last_used_at", "revoked_at"]
        read_only_fields = fields


class DeviceKeyCreatedOutput(DeviceKeyOutput):
    secret = serializers.CharField(help_text="Shown once: store it in the EA's settings")

    class Meta(DeviceKeyOutput.Meta):
        fields = [*DeviceKeyOutput.Meta.fields, "secret"]
        read_only_fields = fields


class DeviceKeyListCreateApi(APIView):
    @extend_schema(responses={200: DeviceKeyOutput(many=True), 401: ERRORS[401]},
                   summary="My device keys (never their secrets)")
    def get(self, request: Request) -> Response:
        keys = access.device_keys_of(request.user).order_by("-created_at")
        return Response(DeviceKeyOutput(keys, many=True).data)

    @extend_schema(request=DeviceKeyInput, responses={201: DeviceKeyCreatedOutput, **ERRORS},
                   summary="Create a key for one of my accounts; the secret is shown once")
    def post(self, request: Request) -> Response:
        data = DeviceKeyInput(data=request.data)
        data.is_valid(raise_exception=True)
        account = access.account_writable(request.user, data.validated_data["account_id"])
        key, secret = services.device_key_create(account=account,
                                                 name=data.validated_data["name"],
                                                 created_by=request.user)
        body = DeviceKeyOutput(key).data
        return Response({**body, "secret": secret}, status=status.HTTP_201_CREATED)


class DeviceKeyRevokeApi(APIView):
    @extend_schema(responses={204: OpenApiResponse(description="Revoked"), **ERRORS},
                   summary="Revoke a device key")
    def delete(self, request: Request, key_id: str) -> Response:
        key = access.device_key_revocable(request.user, parse_id(key_id))
        services.device_key_revoke(key=key)
        return Response(status=status.HTTP_204_NO_CONTENT)
