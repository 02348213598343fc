"""Authentication for the platform's own execution service (machine to machine).

``Authorization: Service <token>`` where the token is ``EXECUTION_SERVICE_TOKEN``
(compared in constant time). Only views that list this class accept it.
"""

from __future__ import annotations

import hmac

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.request import Request


class ServicePrincipal:
    """Not a person: ``is_authenticated`` but no user row, no owner powers elsewhere."""

    is_authenticated = True
    is_active = True
    is_owner = False
    is_service = True
    pk = None
    username = "execution-service"

    def __str__(self) -> str:
        return self.username


class ServiceTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Service"

    def authenticate(self, request: Request) -> tuple[ServicePrincipal, None] | None:
        header = authentication.get_authorization_header(request).decode(errors="replace")
        if not header.startswith(f"{self.keyword} "):
            return None
        expected = settings.EXECUTION_SERVICE_TOKEN
        given = header[len(self.keyword) + 1:].strip()
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            raise exceptions.AuthenticationFailed("bad service token")
        return ServicePrincipal(), None

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class ServiceTokenScheme(OpenApiAuthenticationExtension):
    """Describes the service token in the OpenAPI schema."""

    target_class = "config.service_auth.ServiceTokenAuthentication"
    name = "serviceToken"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "Service <EXECUTION_SERVICE_TOKEN>"}
