"""Risk configuration (owner edits) and position sizing."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.apis import ERRORS
from config.errors import ApplicationError
from config.permissions import IsOwner
from risk import selectors, services
from risk.models import RiskConfigurationChange
from risk.serializers import (
    PositionSizeInput,
    PositionSizeOutput,
    RiskChangeOutput,
    RiskConfigChangedOutput,
    RiskConfigInput,
    RiskConfigOutput,
)


def _status_context() -> dict[str, str]:
    from guards.services import platform_state_get

    return {"trading_status": platform_state_get()}


class RiskConfigApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsOwner]
    owner_only_methods = frozenset({"POST"})
    owner_only_message = "Only the owner may change the risk configuration."

    @extend_schema(responses={200: RiskConfigOutput, 401: ERRORS[401]},
                   summary="The global risk configuration")
    def get(self, request: Request) -> Response:
        return Response(RiskConfigOutput(services.risk_configuration_get(),
                                         context=_status_context()).data)

    @extend_schema(
        request=RiskConfigInput,
        parameters=[OpenApiParameter("new_risk_percent", float,
                                     description="The seed's form: the new risk %")],
        responses={200: RiskConfigChangedOutput, 403: ERRORS[400], 422: ERRORS[422],
                   400: ERRORS[400], 401: ERRORS[401]},
        summary="Change the configuration (owner only; audited)")
    def post(self, request: Request) -> Response:
        data = dict(request.data) if hasattr(request.data, "keys") else {}
        if "new_risk_percent" in request.query_params:
            data["fixed_risk_percent"] = request.query_params["new_risk_percent"]
        if not data:
            raise ApplicationError("Nothing to change: give at least one field.",
                                   code="nothing_to_change", status_code=422)
        changes = RiskConfigInput(data=data)
        if not changes.is_valid():
            field = next(iter(changes.errors))
            raise ApplicationError(f"{field}: {changes.errors[field][0]}", code="invalid",
                                   status_code=422, detail={"field": field})
        config = services.risk_configuration_update(
            changed_by=request.user, source="api", **changes.validated_data)
        return Response(RiskConfigChangedOutput(config, context=_status_context()).data)


class RiskConfigHistoryApi(APIView):
    permission_classes = [permissions.IsAuthenticated, IsOwner]
    owner_only_code = "permission_denied"  # the code this endpoint has always answered

    @extend_schema(responses={200: RiskChangeOutput(many=True), **ERRORS},
                   summary="Every change of the configuration, newest first (owner)")
    def get(self, request: Request) -> Response:
        changes = RiskConfigurationChange.objects.select_related("changed_by")[:500]
        return Response(RiskChangeOutput(changes, many=True).data)


class PositionSizeApi(APIView):
    @extend_schema(request=PositionSizeInput, responses={200: PositionSizeOutput, **ERRORS},
                   summary="Size a setup's three entries from the global risk %")
    def post(self, request: Request) -> Response:
        data = PositionSizeInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        # one query: the account with its credentials, guard state and the kill switch
        account = selectors.account_for_sizing(user=request.user,
                                               account_id=values.pop("account_id"))
        if account is None:
            raise Http404
        answer = services.position_size(account=account, requested_by=request.user,
                                        take_profit=values.pop("take_profit", None), **values)
        return Response(PositionSizeOutput(answer).data)
