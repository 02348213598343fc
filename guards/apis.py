"""Guards API: each account's guard level and alerts, a member's manual close, and the
kill switch."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.apis import ERRORS
from config.permissions import IsOwner
from guards import access, selectors, services
from guards.models import CloseRequest, PlatformState
from guards.serializers import GuardsOverviewOutput
from positions.access import position_closable


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
    @extend_schema(responses={200: GuardsOverviewOutput, 401: ERRORS[401]},
                   summary="Guard level, drawdown, thresholds, alerts and closes per account")
    def get(self, request: Request) -> Response:
        accounts = access.accounts_guarded_for(request.user)
        return Response(GuardsOverviewOutput({
            "platform_state": services.platform_state_get(),
            "accounts": selectors.guards_overview(list(accounts))}).data)


class ManualCloseApi(APIView):
    @extend_schema(request=ManualCloseInput,
                   responses={200: CloseRequestOutput, 429: ERRORS[400], **ERRORS},
                   summary="Close one of my positions (idempotent; once per symbol per 30 s)")
    def post(self, request: Request) -> Response:
        data = ManualCloseInput(data=request.data)
        data.is_valid(raise_exception=True)
        position = position_closable(request.user, data.validated_data["position_id"])
        close = services.manual_close(position=position, requested_by=request.user,
                                      reason=data.validated_data["reason"])
        return Response(CloseRequestOutput(close).data)


class PlatformStateApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsOwner]
    owner_only_methods = frozenset({"PUT"})
    owner_only_message = "Only the owner may set the platform state."

    @extend_schema(responses={200: PlatformStateOutput, 401: ERRORS[401]},
                   summary="The kill switch: ACTIVE, REDUCING or HALTED")
    def get(self, request: Request) -> Response:
        services.platform_state_get()
        return Response(PlatformStateOutput(PlatformState.objects.get(pk=1)).data)

    @extend_schema(request=PlatformStateInput,
                   responses={200: PlatformStateOutput, 403: ERRORS[400], **ERRORS},
                   summary="Set the kill switch (owner only; audited)")
    def put(self, request: Request) -> Response:
        data = PlatformStateInput(data=request.data)
        data.is_valid(raise_exception=True)
        row = services.platform_state_set(changed_by=request.user, **data.validated_data)
        return Response(PlatformStateOutput(row).data)
