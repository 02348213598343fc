"""Sign-in with a password: POST /api/v1/auth/token and /auth/token/refresh, throttled.

simplejwt's views with DRF throttles in front: per IP (``LOGIN_RATE_PER_IP``) and per
username (``LOGIN_RATE_PER_USERNAME``, the username lower-cased). DRF checks throttles in
``APIView.initial``, before the serializer runs, so a throttled attempt costs a cache
round trip and never a password hash (four wrong-password loops had slowed every other
request twentyfold). Every attempt counts, right or wrong: a guesser cannot interleave the
real password to reset the count. The refresh is throttled per IP; its tokens rotate and
the used one is blacklisted (``SIMPLE_JWT``), and ``accounts.tokens`` revokes a user's
tokens when their password changes or they are deactivated.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import InvalidToken
from rest_framework_simplejwt.serializers import (
    TokenObtainPairSerializer,
    TokenRefreshSerializer,
)
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from config.serializers import ErrorSerializer


class LoginIpThrottle(SimpleRateThrottle):
    """Sign-in attempts per client address (``REST_FRAMEWORK['NUM_PROXIES']`` decides
    which X-Forwarded-For hop that is)."""

    scope = "login_ip"

    def get_cache_key(self, request: Request, view: APIView) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class LoginUsernameThrottle(SimpleRateThrottle):
    """Sign-in attempts per username, from any address."""

    scope = "login_username"

    def get_cache_key(self, request: Request, view: APIView) -> str | None:
        data = request.data  # parsed by the capped, depth-limited parser
        username = data.get("username") if hasattr(data, "get") else None
        if not isinstance(username, str) or not username.strip():
            return None  # nothing to count: the serializer refuses it (400)
        # hashed: any characters the client sends make a safe cache key
        ident = hashlib.sha256(username.strip().lower().encode()).hexdigest()
        return self.cache_format % {"scope": self.scope, "ident": ident}


class SignInInput(TokenObtainPairSerializer):
    """simplejwt's sign-in with bounded fields: a username longer than the model's 150
    characters is 400 before anything looks it up (django-axes records every failed
    sign-in, and a 5,000-character one overflowed its column into a 500)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields[self.username_field] = serializers.CharField(write_only=True,
                                                                 max_length=150)
        self.fields["password"] = serializers.CharField(
            write_only=True, max_length=4096, trim_whitespace=False,
            style={"input_type": "password"})


SIGN_IN_ERRORS = {400: ErrorSerializer, 401: ErrorSerializer, 413: ErrorSerializer,
                  429: ErrorSerializer}


@extend_schema_view(post=extend_schema(
    request=SignInInput, responses={200: SignInInput, **SIGN_IN_ERRORS},
    summary="A JWT pair (access, refresh) for a username and password; throttled per "
            "username and per address (429 with Retry-After)"))
class TokenObtainApi(TokenObtainPairView):
    throttle_classes = [LoginIpThrottle, LoginUsernameThrottle]
    serializer_class = SignInInput


class RefreshInput(TokenRefreshSerializer):
    """simplejwt's refresh, with a token whose user was deleted refused (401), not a 500
    (its ``objects.get`` raises DoesNotExist)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, str]:
        try:
            return super().validate(attrs)
        except get_user_model().DoesNotExist:
            raise InvalidToken("The token's user no longer exists.") from None


@extend_schema_view(post=extend_schema(
    responses={200: RefreshInput, **SIGN_IN_ERRORS},
    summary="A new access token and a new refresh token; the one sent is spent"))
class TokenRefreshApi(TokenRefreshView):
    throttle_classes = [LoginIpThrottle]
    serializer_class = RefreshInput
