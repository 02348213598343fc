"""Post-processing of the generated OpenAPI schema, so it says what the API accepts."""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiSerializerFieldExtension

#: Request bodies whose serializer refuses unknown keys (the alert kinds are a closed set).
CLOSED_REQUESTS = ("AlertPreferencesInputRequest", "PatchedAlertPreferencesInputRequest")


def decimal_pattern(*, max_digits: int, places: int, sign: str) -> str:
    """The strings DRF's DecimalField(max_digits, decimal_places) takes, as a regular
    expression: at least one digit, at most ``max_digits - places`` of them before the
    point (leading zeros are not counted) and ``places`` after it (trailing ones are).
    ``sign``: ``any`` (an optional minus), ``nonneg`` or ``pos`` (a non-zero digit).
    drf-spectacular's own pattern made every digit optional, so "" matched it."""
    whole = max_digits - places
    frac = rf"(?:\.\d{{0,{places}}})?" if places else ""
    if sign == "pos":
        options = [rf"0*[1-9]\d{{0,{whole - 1}}}{frac}"] if whole > 0 else []
        options += [rf"0*\.{'0' * zeros}[1-9]\d{{0,{places - zeros - 1}}}"
                    for zeros in range(places)]
        return "^(?:" + "|".join(options) + ")$"
    options = [rf"0*\d{{1,{whole}}}{frac}"] if whole > 0 else ["0*"]
    if places:
        options.append(rf"0*\.\d{{1,{places}}}")
    return ("^-?" if sign == "any" else "^") + "(?:" + "|".join(options) + ")$"


class DecimalFieldSchema(OpenApiSerializerFieldExtension):
    """Every DecimalField sent as a string gets ``decimal_pattern`` for its digits and its
    ``min_value``'s sign."""

    target_class = "rest_framework.fields.DecimalField"
    match_subclasses = True

    def map_serializer_field(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        field = self.target
        schema = auto_schema._map_serializer_field(field, direction, bypass_extensions=True)
        if (schema.get("type") != "string" or field.max_digits is None
                or field.decimal_places is None):
            return schema
        low = field.min_value
        sign = "any" if low is None or low < 0 else ("pos" if low > 0 else "nonneg")
        schema["pattern"] = decimal_pattern(max_digits=field.max_digits,
                                            places=field.decimal_places, sign=sign)
        return schema


def postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool
                ) -> dict[str, Any]:
    """SPECTACULAR_SETTINGS POSTPROCESSING_HOOKS: ``additionalProperties: false`` where the
    API refuses unknown keys."""
    schemas = result.get("components", {}).get("schemas", {})
    for name in CLOSED_REQUESTS:
        if name in schemas:
            schemas[name]["additionalProperties"] = False
    return result
