"""The error types every part of cxbridge raises; the CLI turns each into one clear line."""

from __future__ import annotations


class CxbridgeError(Exception):
    """Base of every error cxbridge raises on purpose: its message is meant for a person."""


class ConfigError(CxbridgeError):
    """The configuration file is missing, unreadable or invalid (names the file, the key and the expectation)."""


class BadReference(CxbridgeError, ValueError):
    """A record id or key the system cannot hold (a ticket id that is not a number, a key with a slash): refused
    before any request is sent, so that no value can change a request's path."""


class PluginError(CxbridgeError):
    """A plugin is unknown, failed to load, or registered something invalid."""


class VendorError(CxbridgeError):
    """A vendor API answered with an error, or could not be reached.

    ``system`` is the configured system name, ``status`` the HTTP status (None when no answer came),
    ``vendor_message`` the vendor's own words from its error body, ``action`` what the error table says to do.
    """

    def __init__(
        self,
        system: str,
        message: str,
        *,
        status: int | None = None,
        vendor_message: str | None = None,
        action: str = "fail",
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.system = system
        self.status = status
        self.vendor_message = vendor_message
        self.action = action
        self.retry_after = retry_after


class NotFound(VendorError):
    """The vendor says the record does not exist (404)."""


class AuthError(VendorError):
    """The vendor refused the credentials (401 or 403): a configuration problem, never retried."""


class RateLimited(VendorError):
    """The vendor is rate limiting us (429, or 503 with Retry-After); ``retry_after`` says how long to wait."""


class Conflict(VendorError):
    """The vendor reports a conflicting update (409): re-read and reconcile, never retry blindly."""


class AmbiguousOutcome(VendorError):
    """A creating request may or may not have been processed (read timeout, reset after send, 500/502/504)."""


class Unavailable(VendorError):
    """The vendor could not be reached, or failed in a way worth retrying later."""


class TemplateError(CxbridgeError):
    """A handoff template failed to render: names the template and the line."""


class WebhookRejected(CxbridgeError):
    """A webhook delivery failed verification; the only error a verifier raises, whatever the input held."""

    def __init__(self, message: str, *, status: int = 401) -> None:
        super().__init__(message)
        self.status = status


class EffectInFlight(CxbridgeError):
    """Another live runner holds this write (its intent is ``sending``): nothing was written here."""


class LeaseLost(CxbridgeError):
    """The worker's lease on its job lapsed or was taken over: it must not write, and it does not retry the job."""
