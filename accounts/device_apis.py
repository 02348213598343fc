"""Device keys for EA push (/api/v1/devices) and the signed push itself."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import access, services
from accounts.apis import ERRORS
from accounts.models import DeviceKey
from config.api import parse_id
from config.errors import ApplicationError
from config.parsers import MarkingJSONParser, non_finite_path


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


SIGNATURE_HEADERS = [
    OpenApiParameter(name, str, OpenApiParameter.HEADER, required=True, description=text)
    for name, text in (
        ("X-Device-Key", "the key id, dk_…"),
        ("X-Timestamp", "Unix seconds when signed; at most 5 minutes old"),
        ("X-Nonce", "16–64 characters, never reused"),
        ("X-Signature", "hex HMAC-SHA256(secret, '{timestamp}.{nonce}.' + raw body)"),
    )
]


class DeviceSyncApi(APIView):
    """Signed by the device, not by a user session or JWT."""

    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]
    parser_classes = [MarkingJSONParser]

    @extend_schema(request={"application/json": {"type": "object"}}, parameters=SIGNATURE_HEADERS,
                   responses={200: OpenApiResponse(description="applied or ignored"),
                              **ERRORS, 413: ERRORS[400]},
                   summary="An EA pushes its account snapshot (MetaTrader 5 field names)")
    def post(self, request: Request) -> Response:
        from positions.push import device_request_verify, device_snapshot_apply, snapshot_validate

        length = request.META.get("CONTENT_LENGTH") or "0"
        if not length.isdigit() or int(length) > settings.DEVICE_SYNC_MAX_BODY_BYTES:
            raise ApplicationError(
                f"The body is over {settings.DEVICE_SYNC_MAX_BODY_BYTES} bytes.",
                code="body_too_large", status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
        key = device_request_verify(headers=request.headers, body=request.body)
        data = request.data
        # MQL5 can print NaN and Infinity as bare tokens: the parser keeps them as markers
        # so the answer names the field like any other out-of-range value.
        field = non_finite_path(data)
        if field is not None:
            raise ApplicationError(f"{field}: NaN and infinity are not numbers.",
                                   code="invalid_snapshot", status_code=422,
                                   detail={"field": field, "error": "not a finite number"})
        snapshot = snapshot_validate(data)
        return Response(device_snapshot_apply(key=key, snapshot=snapshot))
