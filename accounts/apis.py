"""Account linking and management: /api/v1/accounts. Thin views over accounts.services."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import access, services
from accounts.models import TradingAccount
from accounts.serializers import (
    AccountLinkInput,
    AccountOutput,
    IbkrAccountLinkInput,
    account_link_input,
)
from config.api import parse_id
from config.serializers import ErrorSerializer

ERRORS = {
    400: ErrorSerializer, 401: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer,
    422: ErrorSerializer, 503: ErrorSerializer,
}


def readable_account(request: Request, raw_id: str) -> TradingAccount:
    """The account the path's id names, if the user may read it: 400 ``invalid_id``, 404."""
    return access.account_readable(request.user, parse_id(raw_id))


def writable_account(request: Request, raw_id: str) -> TradingAccount:
    """The account the path's id names, if it is the user's own: 400 ``invalid_id``, 404."""
    return access.account_writable(request.user, parse_id(raw_id))


class _BodyRequiredSchema(AutoSchema):
    """The link body is one of two shapes (oneOf), each with required fields: the body
    itself is required (drf-spectacular marks a oneOf body optional)."""

    def _get_request_body(self, direction: str = "request") -> dict[str, Any] | None:
        body = super()._get_request_body(direction)
        if body is not None:
            body["required"] = True
        return body


class AccountListCreateApi(APIView):
    schema = _BodyRequiredSchema()

    @extend_schema(responses={200: AccountOutput(many=True), 401: ErrorSerializer},
                   summary="The member's linked accounts")
    def get(self, request: Request) -> Response:
        accounts = access.accounts_listed_for(request.user)
        return Response(AccountOutput(accounts, many=True).data)

    @extend_schema(request=PolymorphicProxySerializer(
                       component_name="AccountLink",
                       serializers=[AccountLinkInput, IbkrAccountLinkInput],
                       resource_type_field_name=None),
                   responses={201: AccountOutput, **ERRORS},
                   summary="Link an MT5 or Interactive Brokers account (verified through "
                           "the broker)")
    def post(self, request: Request) -> Response:
        data = account_link_input(request.data)
        data.is_valid(raise_exception=True)
        arguments = dict(data.validated_data)
        broker = arguments.pop("broker")
        link = services.ibkr_account_link if broker == "ibkr" else services.account_link
        account = link(user=request.user, **arguments)
        return Response(AccountOutput(account).data, status=status.HTTP_201_CREATED)


class AccountDetailApi(APIView):
    @extend_schema(responses={200: AccountOutput, **ERRORS}, summary="One linked account")
    def get(self, request: Request, account_id: str) -> Response:
        return Response(AccountOutput(readable_account(request, account_id)).data)

    @extend_schema(responses={204: OpenApiResponse(description="Unlinked"), **ERRORS},
                   summary="Unlink an account (history is kept)")
    def delete(self, request: Request, account_id: str) -> Response:
        services.account_unlink(account=writable_account(request, account_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AccountPrimaryApi(APIView):
    @extend_schema(request=None, responses={200: AccountOutput, **ERRORS},
                   summary="Make this account the member's primary one")
    def put(self, request: Request, account_id: str) -> Response:
        account = services.account_primary_set(account=writable_account(request, account_id))
        return Response(AccountOutput(account).data)
