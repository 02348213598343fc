"""Guards API: each account's guard level and alerts, a member's manual close, and the
kill switch."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.apis import ERRORS
from accounts.models import TradingAccount
from config.errors import ApplicationError
from guards import services
from guards.models import CloseRequest, PlatformState
from positions.models import Position


class ManualCloseInput(serializers.Serializer):
    position_id = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                   default="")


class CloseRequestOutput(serializers.ModelSerializer):
    class Meta:
        model = CloseRequest
        fields = ["id", "account", "ticket", "symbol", "reason", "status", "attempts",
                  "last_retcode", "close_price", "closed_volume", "realized_pnl",
                  "created_at", "done_at"]
        read_only_fields = fields


class PlatformStateInput(serializers.Serializer):
    state = serializers.ChoiceField(choices=PlatformState.State.choices)
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True,
                                   default="")


class PlatformStateOutput(serializers.ModelSerializer):
    changed_by = serializers.CharField(source="changed_by.username", default=None,
                                       allow_null=True)

    class Meta:
        model = PlatformState
        fields = ["state", "reason", "changed_by", "changed_at"]
        read_only_fields = fields


class GuardsApi(APIView):
    @extend_schema(responses={200: OpenApiResponse(description="per account"), 401: ERRORS[401]},
                   summary="Guard level, drawdown, thresholds, alerts and closes per account")
    def get(self, request: Request) -> Response:
        accounts = TradingAccount.objects.filter(is_active=True).order_by("pk")
        if not request.user.is_owner:
            accounts = accounts.filter(user=request.user)
        return Response({"platform_state": services.platform_state_get(),
                         "accounts": services.guards_overview(list(accounts))})


class ManualCloseApi(APIView):
    @extend_schema(request=ManualCloseInput,
                   responses={200: CloseRequestOutput, 429: ERRORS[400], **ERRORS},
                   summary="Close one of my positions (idempotent; once per symbol per 30 s)")
    def post(self, request: Request) -> Response:
        data = ManualCloseInput(data=request.data)
        data.is_valid(raise_exception=True)
        position = Position.objects.select_related("account").filter(
            pk=data.validated_data["position_id"], account__user=request.user,
            account__is_active=True).first()
        if position is None:
            raise Http404
        close = services.manual_close(position=position, requested_by=request.user,
                                      reason=data.validated_data["reason"])
        return Response(CloseRequestOutput(close).data)


class PlatformStateApi(APIView):
    @extend_schema(responses={200: PlatformStateOutput, 401: ERRORS[401]},
                   summary="The kill switch: ACTIVE, REDUCING or HALTED")
    def get(self, request: Request) -> Response:
        services.platform_state_get()
        return Response(PlatformStateOutput(PlatformState.objects.get(pk=1)).data)

    @extend_schema(request=PlatformStateInput,
                   responses={200: PlatformStateOutput, 403: ERRORS[400], **ERRORS},
                   summary="Set the kill switch (owner only; audited)")
    def put(self, request: Request) -> Response:
        if not request.user.is_owner:
            raise ApplicationError("Only the owner may set the platform state.",
                                   code="forbidden", status_code=403)
        data = PlatformStateInput(data=request.data)
        data.is_valid(raise_exception=True)
        row = services.platform_state_set(changed_by=request.user, **data.validated_data)
        return Response(PlatformStateOutput(row).data)
