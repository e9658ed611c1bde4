"""Unit tests of the Zendesk connector against canned, spec-validated Zendesk responses (``responses``).

Every canned body is checked against Zendesk's published description before it is served, and every request
body the connector sends is checked against the operation's request schema when the test ends.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from cxbridge_zendesk.connector import ESCALATION_ATTEMPTS, ZendeskConnector

from cxbridge.sdk import (
    AmbiguousOutcome,
    AuthError,
    CallCounter,
    ConfigError,
    Conflict,
    CxbridgeError,
    NotFound,
    RateLimited,
    Secret,
    SystemConfig,
    Unavailable,
    VendorError,
)
from cxbridge.testing import CannedVendor, Sleeps, Spec, build_connector

BASE = "https://acme.zendesk.com"
FIELD_ID = 360001234567
TAG = "escalated_to_engineering"
SPEC = Spec("zendesk")

# -- realistic Zendesk bodies (shapes from the Support API reference and its OAS examples) -------------------

TICKET: dict[str, Any] = {
    "id": 4211,
    "url": f"{BASE}/api/v2/tickets/4211.json",
    "external_id": None,
    "via": {"channel": "email"},
    "created_at": "2024-05-02T09:14:03Z",
    "updated_at": "2024-05-03T16:40:11Z",
    "generated_timestamp": 1714754411,
    "type": "problem",
    "subject": "CSV exports fail with a 500 since Monday",
    "raw_subject": "CSV exports fail with a 500 since Monday",
    "description": "Every export of the Q2 report ends with an error page.",
    "priority": "high",
    "status": "open",
    "recipient": "support@acme.example",
    "requester_id": 90001,
    "submitter_id": 90001,
    "assignee_id": 80001,
    "organization_id": 70001,
    "group_id": 60001,
    "collaborator_ids": [],
    "follower_ids": [],
    "email_cc_ids": [],
    "problem_id": None,
    "has_incidents": False,
    "is_public": True,
    "due_at": None,
    "tags": ["enterprise", "exports"],
    # Zendesk sends "value": null for an empty field; the description allows no null, so the empty
    # issue-key field is omitted here (as reduced_payload_size does).
    "custom_fields": [{"id": 360009999, "value": "eu-west"}],
    "sharing_agreement_ids": [],
    "followup_ids": [],
    "ticket_form_id": 360000111,
    "brand_id": 360000222,
    "allow_channelback": False,
    "allow_attachments": True,
    "from_messaging_channel": False,
}
REQUESTER = {
    "id": 90001,
    "url": f"{BASE}/api/v2/users/90001.json",
    "name": "Dana Whitfield",
    "email": "dana@globex.example",
    "created_at": "2023-01-10T08:00:00Z",
    "updated_at": "2024-05-02T09:14:03Z",
    "time_zone": "Europe/Berlin",
    "locale": "en-US",
    "locale_id": 1,
    "organization_id": 70001,
    "role": "end-user",
    "verified": True,
    "phone": None,
}
AGENT = {
    "id": 80001,
    "url": f"{BASE}/api/v2/users/80001.json",
    "name": "Sam Agent",
    "email": "sam@acme.example",
    "created_at": "2022-03-01T08:00:00Z",
    "updated_at": "2024-05-01T08:00:00Z",
    "role": "agent",
    "active": True,
    "verified": True,
    "suspended": False,
    "tags": [],
}
ORGANIZATION = {
    "id": 70001,
    "url": f"{BASE}/api/v2/organizations/70001.json",
    "name": "Globex Corporation",
    "domain_names": ["globex.example"],
    "created_at": "2023-01-10T08:00:00Z",
    "updated_at": "2024-01-10T08:00:00Z",
    "details": "",
    "notes": "",
    "group_id": None,
    "shared_tickets": False,
    "shared_comments": False,
    "tags": ["enterprise"],
    "organization_fields": {},
}
NOT_FOUND = {"error": "RecordNotFound", "description": "Not found"}
UNAUTHORIZED = {"error": "Couldn't authenticate you"}
UPDATE_CONFLICT = {
    "error": "UpdateConflict",
    "description": "Safe Update prevented the update due to outdated ticket data. "
    "Please fetch the latest ticket data and try again.",
}
RATE_LIMITED = {"errors": [{"code": "RateLimitExceeded", "status": "429", "title": "Rate limit exceeded."}]}


def ticket_body(**changes: Any) -> dict[str, Any]:
    """A Show Ticket answer with the users and organizations sideloads."""
    ticket = copy.deepcopy(TICKET)
    ticket.update(changes)
    return {"ticket": ticket, "users": [REQUESTER, AGENT], "organizations": [ORGANIZATION]}


def comment(cid: int, author: int, body: str, *, public: bool, at: str) -> dict[str, Any]:
    return {
        "id": cid,
        "type": "Comment",
        "author_id": author,
        "body": body,
        "html_body": f'<div class="zd-comment"><p>{body}</p></div>',
        "plain_body": body,
        "public": public,
        "attachments": [],
        "audit_id": cid + 1,
        "via": {"channel": "web", "source": {"from": {}, "to": {}, "rel": None}},
        "metadata": {"system": {"client": "Mozilla/5.0"}, "custom": {}},
        "created_at": at,
    }


# -- harness --------------------------------------------------------------------------------------------------


def spec_path(path: str) -> str:
    """The path as the description spells it: Zendesk serves every path with and without ``.json``."""
    return path.removesuffix(".json")


def validate_served(method: str, path: str, status: int, body: Any, schema: str | None) -> None:
    """Check a canned body against the spec before serving it (named component schema for error bodies)."""
    if schema is not None:
        SPEC.validate_schema(schema, body)
        return
    template = SPEC.match_path(method, spec_path(path))
    SPEC.validate_response(method, template, status, body)
    if isinstance(body, dict):
        for user in body.get("users", []):
            SPEC.validate_schema("UserObject", user)
        for org in body.get("organizations", []):
            SPEC.validate_schema("OrganizationObject", org)
        if "meta" in body:
            SPEC.validate_schema("CursorPaginationMeta", {"meta": body["meta"], "links": body["links"]})


class Vendor(CannedVendor):
    """The canned Zendesk: queues validated responses and records what the connector sent."""

    def reply(
        self,
        method: str,
        path: str,
        body: Any,
        *,
        status: int = 200,
        schema: str | None = None,
        headers: dict[str, str] | None = None,
        query: dict[str, str] | None = None,
    ) -> None:
        validate_served(method, path, status, body, schema)
        match = [responses.matchers.query_param_matcher(query)] if query is not None else []
        self.rsps.add(method, BASE + path, json=body, status=status, headers=headers, match=match)


@pytest.fixture
def vendor() -> Iterator[Vendor]:
    """Canned Zendesk; on teardown every JSON request body sent is validated against its operation."""
    with responses.RequestsMock(assert_all_requests_are_fired=True) as rsps:
        v = Vendor(rsps)
        yield v
        v.check_sent(lambda path: SPEC, spec_path)


def make_config(**options: Any) -> SystemConfig:
    opts: dict[str, Any] = {
        "email": "bridge@acme.example",
        "api_token": Secret("zd-token-123"),
        "issue_key_field_id": FIELD_ID,
    }
    opts.update(options)
    return SystemConfig(name="zendesk", plugin="zendesk", base_url=BASE, max_retries=2, options=opts)


@pytest.fixture
def counter() -> CallCounter:
    return CallCounter()


@pytest.fixture
def zd(sleeps: Sleeps, counter: CallCounter) -> ZendeskConnector:
    return build_connector(
        ZendeskConnector,
        make_config(),
        counter=counter,
        session=requests.Session(),
        default_headers=dict(ZendeskConnector.default_headers),
        sleep=sleeps,
    )


# -- configuration and auth -----------------------------------------------------------------------------------


def test_api_token_auth_is_basic_email_slash_token(vendor: Vendor, zd: ZendeskConnector) -> None:
    """An API token authenticates as Basic ``{email}/token:{token}``."""
    vendor.reply("GET", "/api/v2/users/me", {"user": AGENT})
    zd.check()
    expected = base64.b64encode(b"bridge@acme.example/token:zd-token-123").decode()
    assert vendor.calls[0].request.headers["Authorization"] == f"Basic {expected}"


def test_oauth_token_auth_is_bearer(vendor: Vendor) -> None:
    """An OAuth token authenticates as Bearer, built through from_config like production."""
    config = make_config(api_token=None, email=None, oauth_token=Secret("oauth-abc"))
    zd = ZendeskConnector.from_config(config, session=requests.Session())
    vendor.reply("GET", "/api/v2/users/me", {"user": AGENT})
    zd.check()
    assert vendor.calls[0].request.headers["Authorization"] == "Bearer oauth-abc"


def test_agent_person_reads_the_user_the_signed_app_request_names(vendor: Vendor, zd: ZendeskConnector) -> None:
    """ShowUser gives the agent's name and email; an end user, a suspended or an inactive user is no agent."""
    vendor.reply("GET", "/api/v2/users/80001", {"user": AGENT})
    agent = zd.agent_person("80001")
    assert agent is not None
    assert (agent.name, agent.email) == ("Sam Agent", "sam@acme.example")
    for change in ({"role": "end-user"}, {"suspended": True}, {"active": False}):
        vendor.reply("GET", "/api/v2/users/80001", {"user": {**AGENT, **change}})
        assert zd.agent_person("80001") is None
    with pytest.raises(CxbridgeError):
        zd.agent_person("../users/me")


@pytest.mark.parametrize(
    "options",
    [
        {"oauth_token": Secret("oauth-abc")},  # both set
        {"api_token": None},  # neither set
    ],
)
def test_exactly_one_credential_must_be_set(options: dict[str, Any]) -> None:
    """Both or neither of api_token / oauth_token is a ConfigError naming the system."""
    with pytest.raises(ConfigError, match=r"systems\.zendesk.*exactly one"):
        ZendeskConnector.make_auth(make_config(**options))


def test_api_token_needs_the_email() -> None:
    """API-token auth without the agent's email is a ConfigError naming the key."""
    with pytest.raises(ConfigError, match=r"systems\.zendesk\.email"):
        ZendeskConnector.make_auth(make_config(email=None))


def test_base_url_must_be_on_zendesk_com() -> None:
    """from_config refuses a base URL outside *.zendesk.com."""
    config = SystemConfig(
        name="zendesk",
        plugin="zendesk",
        base_url="https://acme.zendesk.com.evil.example",
        options=make_config().options,
    )
    with pytest.raises(ConfigError, match="zendesk"):
        ZendeskConnector.from_config(config)


# -- check ----------------------------------------------------------------------------------------------------


def test_check_says_who_we_are(vendor: Vendor, zd: ZendeskConnector) -> None:
    """check() reads /users/me and names the user."""
    vendor.reply("GET", "/api/v2/users/me", {"user": AGENT})
    assert zd.check() == "authenticated as Sam Agent <sam@acme.example>"


def test_check_refuses_an_anonymous_answer(vendor: Vendor, zd: ZendeskConnector) -> None:
    """/users/me answers anonymous callers with a user without an id: that is a refused credential.

    (Zendesk sends ``"id": null``; the description does not allow a null id, so the canned body omits it.)
    """
    vendor.reply("GET", "/api/v2/users/me", {"user": {"name": "Anonymous user", "role": "end-user"}})
    with pytest.raises(AuthError):
        zd.check()


def test_401_is_an_auth_error_with_zendesks_words(vendor: Vendor, zd: ZendeskConnector) -> None:
    """A 401 raises AuthError at once (no retry) carrying Zendesk's message, never the token."""
    vendor.reply("GET", "/api/v2/users/me", UNAUTHORIZED, status=401, schema="SavedSearchError")
    with pytest.raises(AuthError) as info:
        zd.check()
    assert info.value.vendor_message == "Couldn't authenticate you"
    assert "zd-token-123" not in str(info.value)
    assert len(vendor.calls) == 1


# -- get_ticket -----------------------------------------------------------------------------------------------


def test_get_ticket_maps_everything_in_one_call(vendor: Vendor, zd: ZendeskConnector, counter: CallCounter) -> None:
    """One GET with the users and organizations sideloads fills requester, organization and fields."""
    vendor.reply("GET", "/api/v2/tickets/4211", ticket_body(), query={"include": "users,organizations"})
    ticket = zd.get_ticket("4211")
    assert counter.total() == 1
    assert str(ticket.ref) == "zendesk:ticket:4211"
    assert ticket.url == f"{BASE}/agent/tickets/4211"
    assert ticket.subject == "CSV exports fail with a 500 since Monday"
    assert ticket.description.startswith("Every export")
    assert (ticket.status, ticket.priority) == ("open", "high")
    assert ticket.tags == ["enterprise", "exports"]
    assert ticket.requester is not None
    assert (ticket.requester.name, ticket.requester.email) == ("Dana Whitfield", "dana@globex.example")
    assert str(ticket.requester.ref) == "zendesk:user:90001"
    assert ticket.organization == "Globex Corporation"
    assert ticket.custom_fields == {"360009999": "eu-west"}
    assert ticket.created_at is not None
    assert ticket.created_at.isoformat() == "2024-05-02T09:14:03+00:00"
    assert ticket.updated_at is not None
    assert ticket.updated_at.isoformat() == "2024-05-03T16:40:11+00:00"
    assert ticket.raw["updated_at"] == "2024-05-03T16:40:11Z"
    assert ticket.comments == []


def test_get_ticket_without_organization_or_sideloaded_requester(vendor: Vendor, zd: ZendeskConnector) -> None:
    """A ticket with no organization and a requester missing from the sideload still maps."""
    body = ticket_body(organization_id=None, requester_id=12345)
    vendor.reply("GET", "/api/v2/tickets/4211", body)
    ticket = zd.get_ticket("4211")
    assert ticket.organization is None
    assert ticket.requester is not None
    assert ticket.requester.email is None
    assert str(ticket.requester.ref) == "zendesk:user:12345"


def test_get_ticket_404_is_not_found(vendor: Vendor, zd: ZendeskConnector) -> None:
    """A missing ticket raises NotFound with Zendesk's RecordNotFound words, after one call."""
    vendor.reply("GET", "/api/v2/tickets/999", NOT_FOUND, status=404, schema="SavedSearchError")
    with pytest.raises(NotFound) as info:
        zd.get_ticket("999")
    assert info.value.vendor_message == "RecordNotFound: Not found"
    assert len(vendor.calls) == 1


def test_get_ticket_retries_a_503(vendor: Vendor, zd: ZendeskConnector, sleeps: Sleeps) -> None:
    """A read that meets a 5xx is retried with backoff and then succeeds."""
    vendor.reply(
        "GET",
        "/api/v2/tickets/4211",
        {"error": "ServiceUnavailable", "description": "Maintenance"},
        status=503,
        schema="SavedSearchError",
    )
    vendor.reply("GET", "/api/v2/tickets/4211", ticket_body())
    assert zd.get_ticket("4211").subject.startswith("CSV")
    assert len(vendor.calls) == 2
    assert len(sleeps) == 1


def test_get_ticket_gives_up_after_the_retry_budget(vendor: Vendor, zd: ZendeskConnector) -> None:
    """Persistent 500s raise Unavailable after 1 + max_retries attempts."""
    for _ in range(3):
        vendor.reply(
            "GET", "/api/v2/tickets/4211", {"error": "InternalServerError"}, status=500, schema="SavedSearchError"
        )
    with pytest.raises(Unavailable):
        zd.get_ticket("4211")
    assert len(vendor.calls) == 3


def test_429_waits_for_retry_after(vendor: Vendor, zd: ZendeskConnector, sleeps: Sleeps) -> None:
    """A 429 with Retry-After is waited out (through the injected sleep) and retried."""
    vendor.reply("GET", "/api/v2/tickets/4211", RATE_LIMITED, status=429, schema="Errors", headers={"Retry-After": "7"})
    vendor.reply("GET", "/api/v2/tickets/4211", ticket_body())
    zd.get_ticket("4211")
    assert sleeps == [7.0]


def test_429_with_a_long_retry_after_is_raised(vendor: Vendor, zd: ZendeskConnector) -> None:
    """A Retry-After too long to wait inline raises RateLimited with the wait, for the worker to re-queue."""
    vendor.reply(
        "GET", "/api/v2/tickets/4211", RATE_LIMITED, status=429, schema="Errors", headers={"Retry-After": "120"}
    )
    with pytest.raises(RateLimited) as info:
        zd.get_ticket("4211")
    assert info.value.retry_after == 120
    assert info.value.vendor_message == "RateLimitExceeded: Rate limit exceeded."


@pytest.mark.parametrize("bad", ["../users/1", "12 3", "", "4211?x=1", "٣"])
def test_ticket_ids_are_digits_only(zd: ZendeskConnector, bad: str) -> None:
    """A ticket id that is not plain digits never reaches a URL."""
    with responses.RequestsMock(), pytest.raises(ValueError, match="ticket id"):  # a request would fail loudly
        zd.get_ticket(bad)


# -- list_comments --------------------------------------------------------------------------------------------


def test_list_comments_follows_cursor_pagination(vendor: Vendor, zd: ZendeskConnector) -> None:
    """Pages are followed through links.next while meta.has_more; authors come from the users sideload."""
    next_url = f"{BASE}/api/v2/tickets/4211/comments.json?page%5Bafter%5D=eyJvIjoiMiJ9&page%5Bsize%5D=100"
    vendor.reply(
        "GET",
        "/api/v2/tickets/4211/comments",
        {
            "comments": [
                comment(1, 90001, "Exports fail.", public=True, at="2024-05-02T09:14:03Z"),
                comment(2, 80001, "Looking into it.", public=True, at="2024-05-02T10:00:00Z"),
            ],
            "users": [REQUESTER, AGENT],
            "meta": {"has_more": True, "after_cursor": "eyJvIjoiMiJ9", "before_cursor": "eyJvIjoiMSJ9"},
            "links": {"next": next_url, "prev": None},
        },
        query={"page[size]": "100", "include": "users"},
    )
    vendor.reply(
        "GET",
        "/api/v2/tickets/4211/comments.json",
        {
            "comments": [comment(3, 80001, "Internal: reproduced.", public=False, at="2024-05-03T08:00:00Z")],
            "users": [AGENT],
            "meta": {"has_more": False, "after_cursor": None, "before_cursor": "eyJvIjoiMyJ9"},
            "links": {"next": None, "prev": f"{BASE}/api/v2/tickets/4211/comments.json?page%5Bbefore%5D=x"},
        },
        query={"page[after]": "eyJvIjoiMiJ9", "page[size]": "100"},
    )
    comments = zd.list_comments("4211")
    assert [c.body for c in comments] == ["Exports fail.", "Looking into it.", "Internal: reproduced."]
    assert [c.public for c in comments] == [True, True, False]
    assert [str(c.ref) for c in comments] == ["zendesk:comment:1", "zendesk:comment:2", "zendesk:comment:3"]
    assert comments[0].author is not None
    assert comments[0].author.name == "Dana Whitfield"
    assert comments[2].author is not None
    assert comments[2].author.email == "sam@acme.example"
    assert vendor.calls[1].request.url == next_url


def test_list_comments_single_page(vendor: Vendor, zd: ZendeskConnector) -> None:
    """has_more false ends the listing after one call even if a next link is present."""
    vendor.reply(
        "GET",
        "/api/v2/tickets/4211/comments",
        {
            "comments": [comment(1, 90001, "Only one.", public=True, at="2024-05-02T09:14:03Z")],
            "users": [REQUESTER],
            "meta": {"has_more": False, "after_cursor": "a", "before_cursor": "b"},
            "links": {"next": f"{BASE}/api/v2/tickets/4211/comments.json?page%5Bafter%5D=a", "prev": None},
        },
    )
    assert [c.body for c in zd.list_comments("4211")] == ["Only one."]
    assert len(vendor.calls) == 1


def test_list_comments_refuses_a_next_link_on_another_origin(vendor: Vendor, zd: ZendeskConnector) -> None:
    """A pagination link that leaves the configured origin is never followed (SSRF guard)."""
    vendor.reply(
        "GET",
        "/api/v2/tickets/4211/comments",
        {
            "comments": [],
            "meta": {"has_more": True, "after_cursor": "a", "before_cursor": None},
            "links": {"next": "https://evil.example/api/v2/tickets/4211/comments.json?page%5Bafter%5D=a", "prev": None},
        },
    )
    with pytest.raises(VendorError, match="refusing"):
        zd.list_comments("4211")
    assert len(vendor.calls) == 1


def test_list_comments_stops_on_a_repeated_link(vendor: Vendor, zd: ZendeskConnector) -> None:
    """A vendor that hands out the same next link twice cannot loop the connector forever."""
    loop = f"{BASE}/api/v2/tickets/4211/comments.json?page%5Bafter%5D=same"
    page = {
        "comments": [],
        "meta": {"has_more": True, "after_cursor": "same", "before_cursor": None},
        "links": {"next": loop, "prev": None},
    }
    vendor.reply("GET", "/api/v2/tickets/4211/comments", page)
    vendor.reply("GET", "/api/v2/tickets/4211/comments.json", page)
    with pytest.raises(VendorError, match="repeated"):
        zd.list_comments("4211")


# -- record_escalation ----------------------------------------------------------------------------------------


def update_answer(**changes: Any) -> dict[str, Any]:
    ticket = copy.deepcopy(TICKET)
    ticket.update(changes)
    return {
        "ticket": ticket,
        "audit": {
            "id": 555001,
            "ticket_id": 4211,
            "created_at": ticket["updated_at"],
            "author_id": 80001,
            "events": [{"id": 555002, "type": "Comment", "body": "note", "public": False}],
        },
    }


def escalate(zd: ZendeskConnector, ticket: Any, key: str = "ENG-42") -> bool:
    return zd.record_escalation(
        ticket,
        note=f"Escalated to {key}: https://acme.atlassian.net/browse/{key}",
        tag=TAG,
        issue_key=key,
        issue_url=f"https://acme.atlassian.net/browse/{key}",
    )


def test_record_escalation_is_one_safe_update(vendor: Vendor, zd: ZendeskConnector) -> None:
    """Note, tag and issue key go in ONE PUT with safe_update and the ticket's updated_at."""
    vendor.reply("GET", "/api/v2/tickets/4211", ticket_body())
    ticket = zd.get_ticket("4211")
    vendor.reply("PUT", "/api/v2/tickets/4211", update_answer(tags=["enterprise", "exports", TAG]))
    assert escalate(zd, ticket) is True
    assert len(vendor.calls) == 2
    assert vendor.sent(1) == {
        "ticket": {
            "comment": {"body": "Escalated to ENG-42: https://acme.atlassian.net/browse/ENG-42", "public": False},
            "tags": ["enterprise", "exports", TAG],
            "custom_fields": [{"id": FIELD_ID, "value": "ENG-42"}],
            "safe_update": True,
            "updated_stamp": "2024-05-03T16:40:11Z",
        }
    }


def test_record_escalation_does_not_repeat_the_tag(vendor: Vendor, zd: ZendeskConnector) -> None:
    """An agent's escalation tag already on the ticket is kept once; the update still happens (no key yet)."""
    vendor.reply("GET", "/api/v2/tickets/4211", ticket_body(tags=[TAG, "enterprise"]))
    ticket = zd.get_ticket("4211")
    vendor.reply("PUT", "/api/v2/tickets/4211", update_answer())
    assert escalate(zd, ticket) is True
    assert vendor.sent(1)["ticket"]["tags"] == [TAG, "enterprise"]


def test_record_escalation_skips_when_already_applied(vendor: Vendor, zd: ZendeskConnector) -> None:
    """Tag present and the issue-key field already equal: False and no call (a rerun leaves one note)."""
    fields = [{"id": FIELD_ID, "value": "ENG-42"}]
    vendor.reply("GET", "/api/v2/tickets/4211", ticket_body(tags=["enterprise", TAG], custom_fields=fields))
    ticket = zd.get_ticket("4211")
    assert escalate(zd, ticket) is False
    assert len(vendor.calls) == 1  # the read only


def test_record_escalation_to_another_issue_still_writes(vendor: Vendor, zd: ZendeskConnector) -> None:
    """The skip needs the same issue key: a ticket linked to ENG-1 escalated to ENG-42 is updated."""
    fields = [{"id": FIELD_ID, "value": "ENG-1"}]
    vendor.reply("GET", "/api/v2/tickets/4211", ticket_body(tags=[TAG], custom_fields=fields))
    ticket = zd.get_ticket("4211")
    vendor.reply("PUT", "/api/v2/tickets/4211", update_answer())
    assert escalate(zd, ticket) is True


def test_collision_rereads_and_keeps_tags_added_meanwhile(vendor: Vendor, zd: ZendeskConnector) -> None:
    """A 409 safe-update collision re-reads the ticket and retries with the new tags and stamp."""
    vendor.reply("GET", "/api/v2/tickets/4211", ticket_body())
    ticket = zd.get_ticket("4211")
    vendor.reply("PUT", "/api/v2/tickets/4211", UPDATE_CONFLICT, status=409, schema="SavedSearchError")
    vendor.reply(
        "GET",
        "/api/v2/tickets/4211",
        ticket_body(tags=["enterprise", "exports", "vip"], updated_at="2024-05-03T16:41:00Z"),
    )
    vendor.reply("PUT", "/api/v2/tickets/4211", update_answer())
    assert escalate(zd, ticket) is True
    assert [c.request.method for c in vendor.calls] == ["GET", "PUT", "GET", "PUT"]
    retry = vendor.sent(3)["ticket"]
    assert retry["tags"] == ["enterprise", "exports", "vip", TAG]
    assert retry["updated_stamp"] == "2024-05-03T16:41:00Z"


def test_collision_after_our_own_update_landed_writes_nothing(vendor: Vendor, zd: ZendeskConnector) -> None:
    """If the re-read shows our update applied (e.g. a retried PUT), no second note is written."""
    vendor.reply("GET", "/api/v2/tickets/4211", ticket_body())
    ticket = zd.get_ticket("4211")
    vendor.reply("PUT", "/api/v2/tickets/4211", UPDATE_CONFLICT, status=409, schema="SavedSearchError")
    vendor.reply(
        "GET",
        "/api/v2/tickets/4211",
        ticket_body(tags=["enterprise", "exports", TAG], custom_fields=[{"id": FIELD_ID, "value": "ENG-42"}]),
    )
    assert escalate(zd, ticket) is False
    assert [c.request.method for c in vendor.calls] == ["GET", "PUT", "GET"]


def test_first_attempt_collision_with_its_own_note_on_the_ticket_writes_nothing(
    vendor: Vendor, zd: ZendeskConnector
) -> None:
    """Even on a first attempt, a re-read after a 409 that shows the tag, the key and this note writes nothing."""
    note = "Escalated to ENG-42: https://acme.atlassian.net/browse/ENG-42"
    vendor.reply("GET", "/api/v2/tickets/4211", ticket_body())
    ticket = zd.get_ticket("4211")
    vendor.reply("PUT", "/api/v2/tickets/4211", UPDATE_CONFLICT, status=409, schema="SavedSearchError")
    vendor.reply(
        "GET",
        "/api/v2/tickets/4211",
        ticket_body(tags=["enterprise", "exports", TAG], custom_fields=[{"id": FIELD_ID, "value": "ENG-42"}]),
    )
    vendor.reply(
        "GET",
        "/api/v2/tickets/4211/comments",
        {
            "comments": [comment(7, 80001, note, public=False, at="2024-05-03T08:00:00Z")],
            "users": [AGENT],
            "meta": {"has_more": False, "after_cursor": None, "before_cursor": None},
            "links": {"next": None, "prev": None},
        },
        query={"page[size]": "100", "include": "users"},
    )
    changed = zd.record_escalation(
        ticket, note=note, tag=TAG, issue_key="ENG-42", issue_url="https://x", first_attempt=True
    )
    assert changed is False
    assert [c.request.method for c in vendor.calls] == ["GET", "PUT", "GET", "GET"]


def test_collisions_are_bounded(vendor: Vendor, zd: ZendeskConnector) -> None:
    """After ESCALATION_ATTEMPTS collisions the connector raises Conflict instead of looping."""
    vendor.reply("GET", "/api/v2/tickets/4211", ticket_body())
    ticket = zd.get_ticket("4211")
    for i in range(ESCALATION_ATTEMPTS):
        vendor.reply("PUT", "/api/v2/tickets/4211", UPDATE_CONFLICT, status=409, schema="SavedSearchError")
        vendor.reply("GET", "/api/v2/tickets/4211", ticket_body(updated_at=f"2024-05-03T16:4{i + 1}:00Z"))
    with pytest.raises(Conflict) as info:
        escalate(zd, ticket)
    assert sum(c.request.method == "PUT" for c in vendor.calls) == ESCALATION_ATTEMPTS
    assert "UpdateConflict" in (info.value.vendor_message or "")


def test_record_escalation_reads_first_without_a_stamp(vendor: Vendor, zd: ZendeskConnector) -> None:
    """A Ticket built elsewhere (no raw updated_at) is read once to get the stamp for the safe update."""
    vendor.reply("GET", "/api/v2/tickets/4211", ticket_body())
    ticket = zd.get_ticket("4211")
    ticket.raw = {}
    vendor.reply("GET", "/api/v2/tickets/4211", ticket_body())
    vendor.reply("PUT", "/api/v2/tickets/4211", update_answer())
    assert escalate(zd, ticket) is True
    assert vendor.sent(2)["ticket"]["updated_stamp"] == "2024-05-03T16:40:11Z"


def test_record_invalid_names_the_field(vendor: Vendor, zd: ZendeskConnector) -> None:
    """A 422 RecordInvalid fails with Zendesk's per-field details in the message."""
    vendor.reply("GET", "/api/v2/tickets/4211", ticket_body())
    ticket = zd.get_ticket("4211")
    invalid = {
        "error": "RecordInvalid",
        "description": "Record validation errors",
        "details": {"base": [{"description": "Issue key field is not editable", "error": "InvalidValue"}]},
    }
    vendor.reply("PUT", "/api/v2/tickets/4211", invalid, status=422, schema="SavedSearchValidationError")
    with pytest.raises(VendorError) as info:
        escalate(zd, ticket)
    assert info.value.vendor_message == (
        "RecordInvalid: Record validation errors; base: Issue key field is not editable"
    )


# -- add_internal_note / ticket_url ---------------------------------------------------------------------------


def test_add_internal_note_is_a_private_comment(vendor: Vendor, zd: ZendeskConnector) -> None:
    """An internal note is a PUT with comment.public false and nothing else."""
    vendor.reply("PUT", "/api/v2/tickets/4211", update_answer())
    zd.add_internal_note("4211", "ENG-42 moved to In Progress.")
    assert vendor.sent(0) == {"ticket": {"comment": {"body": "ENG-42 moved to In Progress.", "public": False}}}


def test_add_internal_note_never_retries_an_unknown_outcome(vendor: Vendor, zd: ZendeskConnector) -> None:
    """A 500 on a note is AmbiguousOutcome after one call: a blind retry could post the note twice."""
    vendor.reply("PUT", "/api/v2/tickets/4211", {"error": "InternalServerError"}, status=500, schema="SavedSearchError")
    with pytest.raises(AmbiguousOutcome):
        zd.add_internal_note("4211", "note")
    assert len(vendor.calls) == 1


def test_ticket_url_is_the_agent_url(zd: ZendeskConnector) -> None:
    """The agent-facing URL, not the API URL."""
    assert zd.ticket_url("4211") == f"{BASE}/agent/tickets/4211"


# -- error_message --------------------------------------------------------------------------------------------


def _response(body: Any, status: int = 400, *, raw: bytes | None = None) -> requests.Response:
    r = requests.Response()
    r.status_code = status
    r._content = raw if raw is not None else json.dumps(body).encode()
    r.headers["Content-Type"] = "application/json"
    return r


@pytest.mark.parametrize(
    ("body", "expected", "schema"),
    [
        (NOT_FOUND, "RecordNotFound: Not found", "SavedSearchError"),
        ({"error": "Couldn't authenticate you"}, "Couldn't authenticate you", "SavedSearchError"),
        (
            {"error": {"title": "Forbidden", "message": "You do not have access"}},
            "Forbidden: You do not have access",
            None,
        ),
        (RATE_LIMITED, "RateLimitExceeded: Rate limit exceeded.", "Errors"),
        (
            {
                "errors": [
                    {
                        "code": "InvalidPaginationParameter",
                        "title": "Invalid pagination",
                        "detail": "page[size] must be at most 100",
                    }
                ]
            },
            "InvalidPaginationParameter: Invalid pagination (page[size] must be at most 100)",
            "Errors",
        ),
        ({"description": "Something"}, "Something", "SavedSearchError"),
    ],
)
def test_error_message_reads_every_zendesk_shape(body: Any, expected: str, schema: str | None) -> None:
    """Each documented error body gives Zendesk's own words."""
    if schema:
        SPEC.validate_schema(schema, body)
    assert ZendeskConnector.error_message(_response(body)) == expected


@pytest.mark.parametrize("raw", [b"<html>oops</html>", b"[1, 2]", b"null", b"{}", b'{"error": 5}', b"\xff\xfe"])
def test_error_message_is_none_for_anything_else(raw: bytes) -> None:
    """Bodies without Zendesk's words give None (the HTTP layer falls back), never an exception."""
    assert ZendeskConnector.error_message(_response(None, raw=raw)) is None


def test_error_message_is_capped() -> None:
    """A huge description cannot flood a log line."""
    message = ZendeskConnector.error_message(_response({"error": "X", "description": "y" * 5000}))
    assert message is not None
    assert len(message) <= 500


def test_connector_declares_its_contract() -> None:
    """System key, role, cloud domain and config keys are what the core and admins rely on."""
    assert ZendeskConnector.system == "zendesk"
    assert "helpdesk" in ZendeskConnector.roles
    assert ZendeskConnector.cloud_domains == (".zendesk.com",)
    assert not ZendeskConnector.config_keys["issue_key_field_id"].required  # 'cxbridge setup' writes it
    assert ZendeskConnector.supports("plan_setup")
    assert ZendeskConnector.config_keys["api_token"].type is Secret
    assert ZendeskConnector.config_keys["oauth_token"].type is Secret


def test_query_of_get_ticket(vendor: Vendor, zd: ZendeskConnector) -> None:
    """get_ticket asks exactly for the users and organizations sideloads."""
    vendor.reply("GET", "/api/v2/tickets/4211", ticket_body())
    zd.get_ticket("4211")
    assert parse_qs(urlsplit(vendor.calls[0].request.url).query) == {"include": ["users,organizations"]}


# -- decisions: public replies and a decision tag's outcome -----------------------------------------------------


def audit(aid: int, *, marker: str | None, public: bool = True) -> dict[str, Any]:
    return {
        "id": aid,
        "ticket_id": 4211,
        "created_at": "2024-05-03T16:40:11Z",
        "author_id": 80001,
        "metadata": {"system": {}, "custom": {"cxbridge_marker": marker} if marker else {}},
        "events": [{"id": aid + 1, "type": "Comment", "body": "Hello", "public": public}],
    }


def test_public_reply_is_a_public_comment_marked_in_the_audit_metadata(vendor: Vendor, zd: ZendeskConnector) -> None:
    """One update: a public comment, the marker in the write-only ``metadata`` (never in the customer's text)."""
    vendor.reply("PUT", "/api/v2/tickets/4211", update_answer())
    zd.add_public_reply("4211", "The fix is live.", marker="cxb-0123456789ab")
    assert vendor.sent(0) == {
        "ticket": {
            "comment": {"body": "The fix is live.", "public": True},
            "metadata": {"cxbridge_marker": "cxb-0123456789ab"},
        }
    }


def test_public_reply_unknown_outcome_is_ambiguous_and_never_retried(vendor: Vendor, zd: ZendeskConnector) -> None:
    vendor.rsps.add("PUT", BASE + "/api/v2/tickets/4211", body=requests.exceptions.ReadTimeout("slow"))
    with pytest.raises(AmbiguousOutcome):
        zd.add_public_reply("4211", "The fix is live.", marker="cxb-0123456789ab")
    assert len(vendor.calls) == 1


def test_has_public_reply_reads_the_audits_newest_first_by_cursor(vendor: Vendor, zd: ZendeskConnector) -> None:
    first = {
        "audits": [audit(9, marker=None), audit(7, marker="cxb-other")],
        "meta": {"has_more": True, "after_cursor": "abc", "before_cursor": "xyz"},
        "links": {"next": f"{BASE}/api/v2/tickets/4211/audits?page%5Bafter%5D=abc&page%5Bsize%5D=100", "prev": None},
    }
    second = {
        "audits": [audit(5, marker="cxb-0123456789ab")],
        "meta": {"has_more": False, "after_cursor": None, "before_cursor": "def"},
        "links": {"next": None, "prev": None},
    }
    vendor.rsps.add("GET", BASE + "/api/v2/tickets/4211/audits", json=first)
    vendor.rsps.add("GET", BASE + "/api/v2/tickets/4211/audits", json=second)
    assert zd.has_public_reply("4211", "cxb-0123456789ab") is True
    query = parse_qs(urlsplit(vendor.calls[0].request.url or "").query)
    assert query == {"page[size]": ["100"], "sort": ["-created_at"]}
    vendor.rsps.add("GET", BASE + "/api/v2/tickets/4211/audits", json=second)
    assert zd.has_public_reply("4211", "cxb-missing") is False
    # a marked audit whose comment is not public is not the reply
    vendor.rsps.add(
        "GET",
        BASE + "/api/v2/tickets/4211/audits",
        json={"audits": [audit(3, marker="cxb-0123456789ab", public=False)], "meta": {"has_more": False}, "links": {}},
    )
    assert zd.has_public_reply("4211", "cxb-0123456789ab") is False


def test_note_removing_tag_is_one_safe_update_keeping_tags_added_meanwhile(
    vendor: Vendor, zd: ZendeskConnector
) -> None:
    """The outcome note and the tag's removal in one safe update; a collision re-reads and keeps others' tags."""
    tag = "cxb_decide_credit_50"
    vendor.reply("GET", "/api/v2/tickets/4211", ticket_body(tags=["enterprise", tag]))
    vendor.reply("PUT", "/api/v2/tickets/4211", UPDATE_CONFLICT, status=409, schema="SavedSearchError")
    vendor.reply(
        "GET", "/api/v2/tickets/4211", ticket_body(tags=["enterprise", tag, "vip"], updated_at="2024-05-03T16:41:00Z")
    )
    vendor.reply("PUT", "/api/v2/tickets/4211", update_answer())
    zd.add_note_removing_tag("4211", "Credit of 50 USD granted.", tag)
    assert [c.request.method for c in vendor.calls] == ["GET", "PUT", "GET", "PUT"]
    assert vendor.sent(3) == {
        "ticket": {
            "comment": {"body": "Credit of 50 USD granted.", "public": False},
            "tags": ["enterprise", "vip"],
            "safe_update": True,
            "updated_stamp": "2024-05-03T16:41:00Z",
        }
    }


def test_note_removing_tag_gives_up_after_repeated_collisions(vendor: Vendor, zd: ZendeskConnector) -> None:
    for _ in range(ESCALATION_ATTEMPTS):
        vendor.reply("GET", "/api/v2/tickets/4211", ticket_body(tags=["cxb_decide_reopen"]))
        vendor.reply("PUT", "/api/v2/tickets/4211", UPDATE_CONFLICT, status=409, schema="SavedSearchError")
    with pytest.raises(Conflict, match="kept changing while cxbridge removed the tag 'cxb_decide_reopen'"):
        zd.add_note_removing_tag("4211", "Reopened.", "cxb_decide_reopen")
