"""Live positions, P&L summary and equity series: thin views over positions.selectors."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import access
from accounts.apis import ERRORS, readable_account
from accounts.models import TradingAccount
from positions import metrics, selectors, services
from positions.serializers import (
    AccountPositionsOutput,
    EquityInput,
    EquityOutput,
    PeriodInput,
    PositionsQueryInput,
    SummaryOutput,
)

FORCE_REFRESH = OpenApiParameter(
    "force_refresh", str, enum=["true", "false"],
    description="true: sync through the broker now and answer figures read after the "
    "request (waits for a sync already running; at most once per 10 s per account: 429 "
    "with Retry-After; 503 refresh_failed when the broker cannot be read)")


def positions_response(request: Request, account: TradingAccount) -> Response:
    query = PositionsQueryInput(data=request.query_params)
    query.is_valid(raise_exception=True)
    if query.validated_data["force_refresh"]:
        services.positions_force_refresh(account=account,
                                         min_interval=settings.FORCE_REFRESH_MIN_SECONDS,
                                         wait_seconds=settings.FORCE_REFRESH_WAIT_SECONDS)
        account.refresh_from_db()
    else:
        metrics.positions_cache_hit_total.inc()
    view = selectors.account_positions_view(account)
    if not query.validated_data["force_refresh"]:
        metrics.positions_fetched_total.labels(source="cache").inc(len(view["positions"]))
    return Response(AccountPositionsOutput(view).data)


class PrimaryPositionsApi(APIView):
    @extend_schema(parameters=[FORCE_REFRESH],
                   responses={200: AccountPositionsOutput, 429: ERRORS[400], **ERRORS},
                   summary="Live positions of the member's primary account")
    def get(self, request: Request) -> Response:
        return positions_response(request, access.primary_account_of(request.user))


class AccountPositionsApi(APIView):
    @extend_schema(parameters=[FORCE_REFRESH],
                   responses={200: AccountPositionsOutput, 429: ERRORS[400], **ERRORS},
                   summary="Live positions of one account")
    def get(self, request: Request, account_id: str) -> Response:
        return positions_response(request, readable_account(request, account_id))


class AccountSummaryApi(APIView):
    @extend_schema(parameters=[PeriodInput], responses={200: SummaryOutput, **ERRORS},
                   summary="Realized P&L, win rate and best/worst trade over a period")
    def get(self, request: Request, account_id: str) -> Response:
        account = readable_account(request, account_id)
        period = PeriodInput(data=request.query_params)
        period.is_valid(raise_exception=True)
        summary = selectors.account_summary(account, since=period.validated_data.get("since"),
                                            until=period.validated_data.get("until"))
        return Response(SummaryOutput(summary).data)


class AccountEquityApi(APIView):
    @extend_schema(parameters=[EquityInput], responses={200: EquityOutput, **ERRORS},
                   summary="Equity and balance series for a chart, at most `points` points")
    def get(self, request: Request, account_id: str) -> Response:
        account = readable_account(request, account_id)
        query = EquityInput(data=request.query_params)
        query.is_valid(raise_exception=True)
        points = selectors.account_equity_series(
            account, since=query.validated_data.get("since"),
            until=query.validated_data.get("until"), points=query.validated_data["points"])
        return Response(EquityOutput({"account_id": account.pk, "currency": account.currency,
                                      "points": points}).data)
