"""HubSpot's own error bodies, as the emulator answers them.

Single-object calls answer with the spec's ``Error`` schema (``category``, ``correlationId``, ``message``, plus the
``status: "error"`` key HubSpot always adds); batch calls list ``StandardError`` entries; the rate limiter answers
with HubSpot's separate 429 body (``errorType: "RATE_LIMIT"`` and a ``policyName``, no ``category``).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from cxbridge.sdk import VendorFault

AUTH_MESSAGE = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more "
    "details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)

CATEGORY_BY_STATUS = {
    400: "VALIDATION_ERROR",
    401: "INVALID_AUTHENTICATION",
    403: "MISSING_SCOPES",
    404: "OBJECT_NOT_FOUND",
    405: "VALIDATION_ERROR",
    409: "CONFLICT",
    415: "VALIDATION_ERROR",
}


def correlation_id() -> str:
    """A fresh request correlation id, as HubSpot puts in every error."""
    return str(uuid.uuid4())


def error_body(
    category: str,
    message: str,
    *,
    errors: Sequence[Mapping[str, Any]] | None = None,
    context: Mapping[str, list[str]] | None = None,
) -> dict[str, Any]:
    """A body in the spec's ``Error`` shape."""
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": correlation_id(),
        "category": category,
    }
    if context:
        body["context"] = {k: list(v) for k, v in context.items()}
    if errors:
        body["errors"] = [dict(e) for e in errors]
    return body


def category_for(status: int) -> str:
    """HubSpot's error category for a status the emulator answers without a more specific one."""
    if status in CATEGORY_BY_STATUS:
        return CATEGORY_BY_STATUS[status]
    return "INTERNAL_ERROR" if status >= 500 else "VALIDATION_ERROR"


def fault(status: int, category: str, message: str, **kwargs: Any) -> VendorFault:
    """A VendorFault answered as ``status`` with an ``Error`` body."""
    return VendorFault(status, error_body(category, message, **kwargs))


def not_found(message: str = "resource not found") -> VendorFault:
    """404 ``OBJECT_NOT_FOUND``."""
    return fault(404, "OBJECT_NOT_FOUND", message)


def invalid(
    message: str, *, errors: Sequence[Mapping[str, Any]] | None = None, context: Mapping[str, list[str]] | None = None
) -> VendorFault:
    """400 ``VALIDATION_ERROR``."""
    return fault(400, "VALIDATION_ERROR", message, errors=errors, context=context)


def conflict(message: str) -> VendorFault:
    """409 ``CONFLICT`` (a unique value that another record already holds)."""
    return fault(409, "CONFLICT", message)


def property_errors(problems: Sequence[tuple[str, str, str]]) -> VendorFault:
    """400 for invalid property values; each problem is (property name, error code, message)."""
    details = [
        {"message": message, "code": code, "context": {"propertyName": [name]}} for name, code, message in problems
    ]
    listed = json.dumps(
        [{"isValid": False, "message": m, "error": c, "name": n} for n, c, m in problems], separators=(",", ":")
    )
    return invalid(f"Property values were not valid: {listed}", errors=details)


def rate_limit_body(policy: str = "TEN_SECONDLY_ROLLING") -> dict[str, Any]:
    """HubSpot's 429 body for a rate-limit policy (``TEN_SECONDLY_ROLLING`` or ``DAILY``)."""
    window = "ten_secondly_rolling" if policy == "TEN_SECONDLY_ROLLING" else policy.lower()
    return {
        "status": "error",
        "message": f"You have reached your {window} limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": correlation_id(),
        "policyName": policy,
    }


def retry_after_header(seconds: float | None) -> dict[str, str]:
    """A ``Retry-After`` header in whole seconds, or none."""
    if seconds is None:
        return {}
    return {"Retry-After": str(max(0, math.ceil(float(seconds))))}


def standard_error(category: str, message: str, context: Mapping[str, list[str]]) -> dict[str, Any]:
    """One entry of a batch answer's ``errors`` (the spec's ``StandardError``)."""
    return {
        "status": "error",
        "category": category,
        "message": message,
        "context": {k: list(v) for k, v in context.items()},
        "errors": [],
        "links": {},
    }
