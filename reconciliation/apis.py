"""Reconciliation API: register expected trades; read a member's divergences."""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.authentication import JWTAuthentication

from accounts.apis import ERRORS
from accounts.models import TradingAccount, User
from config.api import parse_id
from config.service_auth import ServiceTokenAuthentication
from reconciliation import selectors, services
from reconciliation.serializers import (
    ExpectedTradeInput,
    ExpectedTradeOutput,
    UserReconciliationOutput,
)


class IsOwnerOrService(permissions.BasePermission):
    def has_permission(self, request: Request, view: object) -> bool:
        user = request.user
        return bool(getattr(user, "is_service", False) or getattr(user, "is_owner", False))


class ExpectedTradeCreateApi(APIView):
    authentication_classes = [ServiceTokenAuthentication, JWTAuthentication]
    permission_classes = [permissions.IsAuthenticated, IsOwnerOrService]

    @extend_schema(request=ExpectedTradeInput,
                   responses={201: ExpectedTradeOutput, 403: ERRORS[400], **ERRORS},
                   summary="Register a trade the bot placed or will place (owner or service)")
    def post(self, request: Request) -> Response:
        data = ExpectedTradeInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        account = TradingAccount.objects.filter(pk=values.pop("account_id"),
                                                is_active=True).first()
        if account is None:
            raise Http404
        trade = services.expected_trade_register(account=account, **values)
        return Response(ExpectedTradeOutput(trade).data, status=status.HTTP_201_CREATED)


class UserReconciliationApi(APIView):
    @extend_schema(responses={200: UserReconciliationOutput, **ERRORS},
                   summary="A member's divergences: open, recently resolved, counts by kind")
    def get(self, request: Request, user_id: str) -> Response:
        wanted = parse_id(user_id)
        if not (request.user.is_owner or request.user.pk == wanted):
            raise Http404
        user = User.objects.filter(pk=wanted).first()
        if user is None:
            raise Http404
        return Response(UserReconciliationOutput(selectors.user_reconciliation(user)).data)
