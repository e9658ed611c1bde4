"""Zendesk's own error answers, as ``VendorFault``s the emulator raises from its models and routes.

Sources: the Support API introduction and the spec's examples (``RecordNotFound``, search ``invalid``); the
``RecordInvalid`` envelope and the 401 body from the developer docs; the safe-update 409 from the tickets page
(error ``UpdateConflict``; its description corroborated by third-party emulators). Zendesk documents no body for
a rate-limited answer (clients key on the status and ``Retry-After``), so the one here is the emulator's choice.
"""

from __future__ import annotations

from typing import Any

from cxbridge.sdk import VendorFault

AUTH_FAILED = {"error": "Couldn't authenticate you"}
# Zendesk asks for HTTP Basic credentials on a refused call.
AUTH_HEADERS = {"WWW-Authenticate": 'Basic realm="Web Password"'}


def not_found() -> VendorFault:
    """404 for a record that does not exist (zenpy raises ``RecordNotFoundException`` on this body)."""
    return VendorFault(404, {"error": "RecordNotFound", "description": "Not found"})


def invalid_endpoint() -> VendorFault:
    """404 for a path the API does not have."""
    return VendorFault(404, {"error": "InvalidEndpoint", "description": "Not found"})


def unauthorized() -> VendorFault:
    """401 for missing or refused credentials."""
    return VendorFault(401, AUTH_FAILED, AUTH_HEADERS)


def record_invalid(field: str, description: str, error: str = "InvalidValue") -> VendorFault:
    """422 ``RecordInvalid`` with one detail for ``field``."""
    return record_invalid_many({field: [(description, error)]})


def record_invalid_many(details: dict[str, list[tuple[str, str]]]) -> VendorFault:
    """422 ``RecordInvalid`` with ``details`` as ``{field: [(description, error), ...]}``."""
    body = {
        "error": "RecordInvalid",
        "description": "Record validation errors",
        "details": {
            name: [{"description": text, "error": code} for text, code in entries] for name, entries in details.items()
        },
    }
    return VendorFault(422, body)


def update_conflict() -> VendorFault:
    """409 when ``safe_update`` found the ticket changed since ``updated_stamp``."""
    return VendorFault(
        409,
        {
            "error": "UpdateConflict",
            "description": "Safe Update prevented the update due to outdated ticket data. "
            "Please fetch the latest ticket data and try again.",
        },
    )


def search_invalid(description: str) -> VendorFault:
    """422 ``invalid`` from search (zenpy maps it to ``SearchResponseLimitExceeded``)."""
    return VendorFault(422, {"error": "invalid", "description": description})


def bad_request(description: str, error: str = "InvalidValue") -> VendorFault:
    """400 for a malformed parameter."""
    return VendorFault(400, {"error": error, "description": description})


def idempotency_mismatch() -> VendorFault:
    """400 when an ``Idempotency-Key`` is reused with a different request body."""
    return VendorFault(
        400,
        {
            "error": "IdempotentRequestError",
            "description": "Request parameters don't match the original request for this idempotency key",
        },
    )


def for_status(status: int, message: str) -> dict[str, Any]:
    """The body for a status the framework raises (injected faults, rate limits, unknown methods)."""
    known: dict[int, dict[str, Any]] = {
        400: {"error": "InvalidValue", "description": message},
        401: AUTH_FAILED,
        403: {"error": "Forbidden", "description": "You do not have access to this page."},
        404: {"error": "RecordNotFound", "description": "Not found"},
        405: {"error": "InvalidEndpoint", "description": "Not found"},
        409: {"error": "Conflict", "description": message},
        422: {"error": "RecordInvalid", "description": "Record validation errors", "details": {}},
        429: {"error": "APIRateLimitExceeded", "description": "Number of allowed API requests per minute exceeded"},
    }
    if status in known:
        return known[status]
    if status >= 500:
        return {"error": "ServerError", "description": message}
    return {"error": "Error", "description": message}
