"""Reconciliation API: register expected trades; read a member's divergences."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication

from accounts.apis import ERRORS
from config.api import parse_id
from config.service_auth import ServiceTokenAuthentication
from reconciliation import access, selectors, services
from reconciliation.serializers import (
    ExpectedTradeInput,
    ExpectedTradeOutput,
    UserReconciliationOutput,
)


class ExpectedTradeCreateApi(APIView):
    authentication_classes = [ServiceTokenAuthentication, JWTAuthentication]
    permission_classes = [permissions.IsAuthenticated, access.IsOwnerOrService]

    @extend_schema(request=ExpectedTradeInput,
                   responses={201: ExpectedTradeOutput, 403: ERRORS[400], **ERRORS},
                   summary="Register a trade the bot placed or will place (owner or service)")
    def post(self, request: Request) -> Response:
        data = ExpectedTradeInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        account = access.expected_trade_account(values.pop("account_id"))
        trade = services.expected_trade_register(account=account, **values)
        return Response(ExpectedTradeOutput(trade).data, status=status.HTTP_201_CREATED)


class UserReconciliationApi(APIView):
    @extend_schema(responses={200: UserReconciliationOutput, **ERRORS},
                   summary="A member's divergences: open, recently resolved, counts by kind")
    def get(self, request: Request, user_id: str) -> Response:
        user = access.user_reconciliation_readable(request.user, parse_id(user_id))
        return Response(UserReconciliationOutput(selectors.user_reconciliation(user)).data)
