"""The plugin SDK: everything a cxbridge plugin imports, in one place.

A plugin (built-in or third-party) imports only this module, and ``cxbridge.testing`` in its tests. What it
exports is the contract between the core and its plugins; ``__all__`` is tested, and the plugin author's guide
(``docs/plugin-hooks.md``) describes each group:

- hooks: ``hookimpl`` marks a plugin's hook implementations (the hooks are in ``cxbridge.hookspecs``);
- roles: ``Connector`` and the three roles ``Helpdesk``, ``CRM``, ``Tracker`` a connector class fills, with the
  records they exchange (``IssueSpec``, ``Page``, ``TicketLink``, ``ManagedBlock``), the deep checks'
  ``Needs``, ``FieldNeed`` and ``Finding``, and the role names;
- provisioning: what ``cxbridge setup`` asks a connector (``PlanItem``, ``SetupContext``, ``ConfigUpdate`` and
  the plan actions ``CREATE``, ``UPDATE``, ``OK``, ``MANUAL``, ``PRUNE``);
- signals: what a plugin's events mean to the core (``interpret`` returns these);
- models: the vendor-neutral records (``Ref``, ``Ticket``, ``Customer``, ``Issue``, ``Event``...);
- errors: what a connector or a verifier raises (the HTTP client raises the vendor ones itself);
- settings: ``ConfigKey`` (a plugin's ``config_keys``), ``SystemConfig`` (a configured system), ``Secret``;
- HTTP: ``HttpClient`` (built by ``Connector.from_config``), the ``CallCounter`` it counts attempts into, the
  auth helpers, ``check_base_url``;
- webhooks: the ``Verifier`` protocol and the helpers that read headers and check HMAC signatures;
- sandbox: ``Backend`` and what an emulator uses to answer, fail and send webhooks like its vendor.
"""

from __future__ import annotations

from .connectors import (
    CREATE,
    CRM,
    CRM_ROLE,
    HELPDESK,
    MANUAL,
    OK,
    PLAN_ACTIONS,
    PRUNE,
    ROLES,
    TRACKER,
    UPDATE,
    ChangedCompany,
    ConfigUpdate,
    Connector,
    ExistingLink,
    FieldNeed,
    Finding,
    Helpdesk,
    IssueSpec,
    ManagedBlock,
    Needs,
    Page,
    PlanItem,
    SetupContext,
    TicketLink,
    Tracker,
    json_object,
    parse_datetime,
    splice_lines,
)
from .errors import (
    AmbiguousOutcome,
    AuthError,
    BadReference,
    ConfigError,
    Conflict,
    CxbridgeError,
    NotFound,
    PluginError,
    RateLimited,
    Unavailable,
    VendorError,
    WebhookRejected,
)
from .hookspecs import hookimpl
from .http import BasicAuth, BearerAuth, CallCounter, HttpClient, check_base_url
from .models import Attachment, Comment, Customer, Deal, Event, Issue, Link, Person, Ref, Ticket
from .sandbox import Backend, Fault, RateLimit, SandboxSecret, VendorFault, WebhookTarget
from .sandbox.base import ADMIN_PREFIX
from .secrets import Secret
from .settings import ConfigKey, SystemConfig
from .signals import (
    CATEGORY_NAMES,
    DONE,
    IN_PROGRESS,
    NEW,
    STATUS_CATEGORIES,
    CustomerChanged,
    DecisionRequested,
    EscalationRequested,
    IssueCommentPosted,
    IssueStateObserved,
    Signal,
    TicketCommentAdded,
    TicketStateObserved,
    Triggers,
    VersionReleased,
)
from .webhooks.verify import (
    MAX_HEADER_BYTES,
    MAX_SIGNATURES,
    Verifier,
    base64_sha256_signatures,
    check_hmac_sha256,
    header_text,
    only_rejections,
    signing_keys,
)

__all__ = [
    "ADMIN_PREFIX",
    "CATEGORY_NAMES",
    "CREATE",
    "CRM",
    "CRM_ROLE",
    "DONE",
    "HELPDESK",
    "IN_PROGRESS",
    "MANUAL",
    "MAX_HEADER_BYTES",
    "MAX_SIGNATURES",
    "NEW",
    "OK",
    "PLAN_ACTIONS",
    "PRUNE",
    "ROLES",
    "STATUS_CATEGORIES",
    "TRACKER",
    "UPDATE",
    "AmbiguousOutcome",
    "Attachment",
    "AuthError",
    "Backend",
    "BadReference",
    "BasicAuth",
    "BearerAuth",
    "CallCounter",
    "ChangedCompany",
    "Comment",
    "ConfigError",
    "ConfigKey",
    "ConfigUpdate",
    "Conflict",
    "Connector",
    "Customer",
    "CustomerChanged",
    "CxbridgeError",
    "Deal",
    "DecisionRequested",
    "EscalationRequested",
    "Event",
    "ExistingLink",
    "Fault",
    "FieldNeed",
    "Finding",
    "Helpdesk",
    "HttpClient",
    "Issue",
    "IssueCommentPosted",
    "IssueSpec",
    "IssueStateObserved",
    "Link",
    "ManagedBlock",
    "Needs",
    "NotFound",
    "Page",
    "Person",
    "PlanItem",
    "PluginError",
    "RateLimit",
    "RateLimited",
    "Ref",
    "SandboxSecret",
    "Secret",
    "SetupContext",
    "Signal",
    "SystemConfig",
    "Ticket",
    "TicketCommentAdded",
    "TicketLink",
    "TicketStateObserved",
    "Tracker",
    "Triggers",
    "Unavailable",
    "VendorError",
    "VendorFault",
    "Verifier",
    "VersionReleased",
    "WebhookRejected",
    "WebhookTarget",
    "base64_sha256_signatures",
    "check_base_url",
    "check_hmac_sha256",
    "header_text",
    "hookimpl",
    "json_object",
    "only_rejections",
    "parse_datetime",
    "signing_keys",
    "splice_lines",
]
