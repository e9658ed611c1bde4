"""Redaction for the HTTP layer: the names of the one implementation, ``cxbridge.redact``, re-exported."""

from __future__ import annotations

from ..redact import (
    MIN_SECRET_LENGTH,
    RedactingFilter,
    escape_crlf,
    install_redaction,
    one_line,
    redact,
    redact_headers,
    redact_url,
    secret_forms,
)

__all__ = [
    "MIN_SECRET_LENGTH",
    "RedactingFilter",
    "escape_crlf",
    "install_redaction",
    "one_line",
    "redact",
    "redact_headers",
    "redact_url",
    "secret_forms",
]
