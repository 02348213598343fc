from __future__ import annotations

from rest_framework import serializers


class ErrorSerializer(serializers.Serializer):
    """Every error: a stable machine code, a message for people, optional details."""

    code = serializers.CharField()
    message = serializers.CharField()
    detail = serializers.DictField(required=False)
