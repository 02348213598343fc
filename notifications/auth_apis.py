"""POST /api/v1/auth/telegram: exchange a Mini App's initData for a JWT pair."""

from __future__ import annotations

from django.conf import settings
from django.db import IntegrityError, transaction
from drf_spectacular.utils import extend_schema
from rest_framework import permissions, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.tokens import RefreshToken

from accounts.apis import ERRORS
from accounts.auth_apis import LoginIpThrottle
from accounts.models import User
from config.errors import ApplicationError
from notifications.initdata import InitDataError, TelegramUser, validate


class InitDataInput(serializers.Serializer):
    init_data = serializers.CharField(max_length=4096, trim_whitespace=False)


class TokenPairOutput(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()
    created = serializers.BooleanField(help_text="A member account was created just now")


def telegram_member(tg: TelegramUser) -> tuple[User, bool]:
    """The member with this Telegram id; created when allowed. Race-safe on the unique id."""
    user = User.objects.filter(telegram_id=tg.id).first()
    if user is not None:
        return user, False
    if not settings.TELEGRAM_AUTO_CREATE_MEMBERS:
        raise ApplicationError("This Telegram user is not a member.", code="not_a_member",
                               status_code=403)
    try:
        with transaction.atomic():
            user = User(username=f"tg{tg.id}", telegram_id=tg.id,
                        first_name=tg.first_name, last_name=tg.last_name,
                        role=User.Role.MEMBER)
            user.set_unusable_password()
            user.save()
            return user, True
    except IntegrityError:  # the same user signing in twice at once
        return User.objects.get(telegram_id=tg.id), False


class TelegramAuthApi(APIView):
    authentication_classes: list = []
    permission_classes = [permissions.AllowAny]
    throttle_classes = [LoginIpThrottle]  # before the HMAC check, like a password

    @extend_schema(request=InitDataInput, responses={200: TokenPairOutput, **ERRORS},
                   summary="Sign in from the Telegram mini app with its initData")
    def post(self, request: Request) -> Response:
        data = InitDataInput(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            tg = validate(data.validated_data["init_data"],
                          bot_token=settings.TELEGRAM_BOT_TOKEN,
                          max_age_seconds=settings.TELEGRAM_INITDATA_MAX_AGE_SECONDS)
        except InitDataError as exc:
            raise ApplicationError(exc.message, code=exc.code, status_code=401) from None
        user, created = telegram_member(tg)
        if not user.is_active:
            raise ApplicationError("This member is disabled.", code="inactive", status_code=401)
        refresh = RefreshToken.for_user(user)
        return Response({"access": str(refresh.access_token), "refresh": str(refresh),
                         "created": created})
