"""One family of application errors and the DRF handler that renders every error as
``{"code": ..., "message": ..., "detail": ...}`` with a stable code."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404, JsonResponse
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler


class ApplicationError(Exception):
    """A domain error with a stable ``code`` and an HTTP status for the API."""

    code = "application_error"
    status_code = status.HTTP_400_BAD_REQUEST

    def __init__(self, message: str, *, code: str | None = None,
                 detail: dict[str, Any] | None = None, status_code: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers = headers or {}
        self.message = message
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code
        self.detail = detail or {}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response({"code": exc.code, "message": exc.message, "detail": exc.detail},
                        status=exc.status_code, headers=exc.headers)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.APIException):
        codes = exc.get_codes()
        code = codes if isinstance(codes, str) else "invalid"
        message = str(exc.detail) if isinstance(exc.detail, str) else "Invalid input."
        response.data = {"code": code, "message": message,
                         "detail": response.data if code == "invalid" else {}}
    return response


def error_response(*, status_code: int, code: str, message: str,
                   detail: dict[str, Any] | None = None) -> JsonResponse:
    """The same ``{"code", "message", "detail"}`` body outside DRF (middleware, handlers)."""
    return JsonResponse({"code": code, "message": message, "detail": detail or {}},
                        status=status_code)
