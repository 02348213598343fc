"""The EA push endpoint: a read that arrives from the terminal, signed by its device key,
and flows through the pipeline like a pulled one (``pipeline.services.device_push``)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.apis import ERRORS
from config.errors import ApplicationError
from config.parsers import MarkingJSONParser, non_finite_path
from pipeline import services
from positions.push import device_request_verify, snapshot_validate

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
        return Response(services.device_push(key=key, snapshot=snapshot))
