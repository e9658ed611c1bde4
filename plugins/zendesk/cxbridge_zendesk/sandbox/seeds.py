"""Data sets for the Zendesk emulator: the account every reset starts with, and the named seeds.

The demo's customers are the HubSpot emulator's demo contacts (same emails and domains), so that cxbridge can
resolve a ticket's requester to a CRM customer. Tickets #1 and #2 report the same bug from two customers.
"""

from __future__ import annotations

from collections.abc import Callable

from .models import User, ZendeskModel

SANDBOX_EMAIL = "agent@cxbridge.example"
SANDBOX_AGENT_NAME = "Sam Agent"
SECOND_AGENT_EMAIL = "alex@cxbridge.example"
ISSUE_KEY_FIELD_TITLE = "Jira issue key"

DAY = 86400.0

# (organization, domain, tier, contact email, contact name)
CUSTOMERS = [
    ("Acme Corp", "acme.example", "strategic", "ada@acme.example", "Ada Lovelace"),
    ("Globex", "globex.example", "enterprise", "grace@globex.example", "Grace Hopper"),
    ("Initech", "initech.example", "standard", "linus@initech.example", "Linus Torvalds"),
]

# (requester email, subject, priority, status, type, tags, description, days ago)
TICKETS = [
    (
        "ada@acme.example",
        "Exports to CSV fail with a timeout",
        "urgent",
        "open",
        "incident",
        ["csv", "export"],
        "Since this morning every CSV export of our usage report fails after about 30 seconds with a timeout.\n\n"
        "We need these exports for month-end billing. Can you look at it urgently?",
        3.0,
    ),
    (
        "grace@globex.example",
        "CSV export times out on large reports",
        "high",
        "open",
        "incident",
        ["csv", "export"],
        "Exporting any report with more than a million rows to CSV stops with a timeout error. "
        "Smaller reports export fine.",
        2.0,
    ),
    (
        "linus@initech.example",
        "How do I change my invoice address?",
        "normal",
        "new",
        "question",
        ["billing"],
        "We moved offices. Where can I update the billing address printed on our invoices?",
        1.0,
    ),
]

INTERNAL_NOTE = (1, "Reproduced on their 2M-row report; workaround: export by month.", 2.5)


def setup_account(model: ZendeskModel) -> None:
    """What a fresh sandbox account holds: the API user (an admin), a second agent, the ticket fields."""
    start = model.now() - 30 * DAY
    model.add_user(SANDBOX_AGENT_NAME, SANDBOX_EMAIL, "admin", created_at=start)
    model.add_user("Alex Support", SECOND_AGENT_EMAIL, "agent", created_at=start)
    for type_, title in (
        ("subject", "Subject"),
        ("description", "Description"),
        ("status", "Status"),
        ("priority", "Priority"),
    ):
        model.add_ticket_field(type_, title, removable=False)
    model.add_ticket_field(
        "text", ISSUE_KEY_FIELD_TITLE, description="Key of the Jira issue this ticket is escalated to (set by cxbridge)"
    )


def seed_empty(model: ZendeskModel) -> None:
    """The bare account, as before ``cxbridge setup``: its users and system fields, no custom field, webhook,
    trigger or macro (the issue-key field a reset adds for the tests that skip setup is removed)."""
    model.remove_custom_fields()
    model.webhooks.clear()
    model.triggers.clear()
    model.macros.clear()


def seed_demo(model: ZendeskModel) -> None:
    """Three customer companies with one contact each, three tickets, and an internal note on ticket #1."""
    if model.organization_by_name(CUSTOMERS[0][0]) is not None:
        return  # already loaded
    now = model.now()
    for org_name, domain, tier, email, name in CUSTOMERS:
        org = model.add_organization(
            org_name, domain_names=[domain], organization_fields={"tier": tier}, created_at=now - 60 * DAY
        )
        model.add_user(name, email, "end-user", organization_id=org.id, created_at=now - 60 * DAY)
    created: list[int] = []
    for email, subject, priority, status, type_, tags, description, days_ago in TICKETS:
        requester = _user(model, email)
        body = {
            "ticket": {
                "subject": subject,
                "comment": {"body": description, "public": True},
                "priority": priority,
                "status": status,
                "type": type_,
                "tags": tags,
                "requester_id": requester.id,
            }
        }
        ticket, _, _ = model.create_ticket(body, requester, at=now - days_ago * DAY, comment_author_id=requester.id)
        ticket.channel = "email"
        ticket.comments[0].channel = "email"
        created.append(ticket.id)
    agent = _user(model, SANDBOX_EMAIL)
    index, note, days_ago = INTERNAL_NOTE
    model.update_ticket(
        created[index - 1], {"ticket": {"comment": {"body": note, "public": False}}}, agent, at=now - days_ago * DAY
    )


def _user(model: ZendeskModel, email: str) -> User:
    found = model.user_by_email(email)
    if found is None:
        raise RuntimeError(f"seed user {email} is missing")
    return found


SEEDS: dict[str, Callable[[ZendeskModel], None]] = {"empty": seed_empty, "demo": seed_demo}
