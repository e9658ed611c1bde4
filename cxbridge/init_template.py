"""The commented starting configuration that ``cxbridge init`` writes.

Kept as Python text (not a data file) so that it ships with the package without package-data. Every section of
``cxbridge.config.CORE_SECTIONS`` and every key of it appears here, live or commented, with its default; the
tests hold it to that and load it with ``load_config``.
"""

from __future__ import annotations

PLACEHOLDER_MARKER = "yourcompany"
"""Text in the template's values that an admin must replace (``https://YOURCOMPANY.zendesk.com``); case-insensitive."""

PLACEHOLDER_VALUES: dict[str, object] = {"systems.zendesk.issue_key_field_id": 0}
"""Values the template writes that are placeholders themselves, by key path: ``cxbridge doctor`` flags them."""

TEMPLATE = """\
# cxbridge configuration, written by 'cxbridge init'.
#
# One file for everything: the core's sections first, then one [systems.<name>] table per connected system.
# Secrets are never written into this file. A secret is either
#     { env = "NAME" }    read from the environment variable NAME, or
#     { file = "path" }   read from a file that holds only the secret (relative to this file).
# Check the file and every connection with 'cxbridge doctor'.

[cxbridge]
# The SQLite store (links, intents, inbox, jobs, dead letters, audit), relative to this file. Receivers and
# workers on several machines share a PostgreSQL store instead (pip install 'cxbridge[postgres]'):
#   store = "postgresql://cxbridge@db.internal:5432/cxbridge"
#   store_password = { env = "CXBRIDGE_STORE_PASSWORD" }
store = "cxbridge.db"
# Folders searched for handoff templates before the packaged defaults; the first match by name wins.
template_dirs = []
# DEBUG, INFO, WARNING or ERROR.
log_level = "INFO"
# Days a webhook delivery is remembered to recognise a redelivery (at least 3: longer than the vendors' retries),
# and days a finished job is kept; the workers purge older ones in small batches (dead jobs stay).
inbox_retention_days = 7
job_retention_days = 7

[plugins]
# Plugins not to load, by name ('cxbridge plugins list --all' names them all; 'cxbridge plugins disable NAME'
# and 'enable NAME' edit this list). CXBRIDGE_LOAD_PLUGINS=name,name in the environment loads only those.
disabled = []

[escalation]
# The [systems.*] tables that hold the tickets, the customers and the engineering issues.
helpdesk = "zendesk"
crm = "hubspot"  # "" when there is no CRM
tracker = "jira"
# An agent escalates a ticket by adding this tag (or with 'cxbridge escalate').
tag = "escalated_to_engineering"
# The tier assumed for a customer the CRM does not know or who has no tier.
default_tier = "standard"
# When an issue create may or may not have happened (a timeout, a 5xx), the tracker is searched for it this
# many seconds before it is created again.
search_grace_seconds = 300
# How the customer is looked for in the CRM, in this order, until a company matches: the contact with the
# requester's email, the company with the email's domain, the company with one of the helpdesk organization's
# domains, the company with the organization's name. Leave a way out to skip it.
customer_match = ["email", "email_domain", "organization_domain", "organization_name"]
# Email domains never taken for a company's (webmail: anyone can have an address there).
free_mail_domains = [
    "gmail.com", "googlemail.com", "outlook.com", "hotmail.com", "live.com", "msn.com", "yahoo.com", "icloud.com",
    "me.com", "aol.com", "proton.me", "protonmail.com", "gmx.com", "gmx.de", "web.de", "yandex.ru", "mail.ru",
    "qq.com", "163.com",
]

# The tracker priority by customer tier, then by ticket priority. Empty: the tracker's default priority.
# Jira fields filled on create, beyond summary, description, priority and labels (one table per field id):
# a constant (value), or from = ticket.<subject|priority|status|type|tags|organization|requester_email>,
# ticket.custom.<field id>, customer.<name|domain|tier|arr|currency|owner|owner_email|renewal_date|
# lifecycle_stage> or agent.<email|name>; map = { from-value = "to-value" } and default are optional. Components,
# versions and select options by name, users (assignee) by email. A field Jira requires and nothing fills stops
# the escalation before any write; 'cxbridge doctor' names it.
[escalation.fields]
# [escalation.fields.components]
# value = ["Backend"]
# [escalation.fields.customfield_10107]
# from = "customer.tier"
# map = { strategic = "Sev 1", enterprise = "Sev 2" }
# default = "Sev 3"

[escalation.priority]
# [escalation.priority.enterprise]
# urgent = "Highest"
# high = "High"
# normal = "Medium"
# low = "Low"

[webhooks]
# Where 'cxbridge serve' listens; put it behind your TLS-terminating proxy.
host = "127.0.0.1"
port = 8787
workers = 2
# The public URL the vendors call. HubSpot signs the full URI, so it must be exactly what HubSpot calls.
public_url = ""
# Deliveries signed longer ago than this are refused (replay protection).
tolerance_seconds = 300
# Slow and idle clients: a request's headers and body must all arrive within request_timeout_seconds (else 408);
# a connection with nothing arriving is closed after idle_timeout_seconds; beyond connection_limit connections
# wait in the listen backlog. threads answer complete requests.
request_timeout_seconds = 10
idle_timeout_seconds = 10
connection_limit = 2000
threads = 8

# The active signing secrets of each system's webhooks. A list, so that during a rotation the old and the
# new secret are both accepted.
[webhooks.secrets]
# zendesk = [{ env = "ZENDESK_WEBHOOK_SECRET" }]
# jira = [{ env = "JIRA_WEBHOOK_SECRET" }]
# hubspot = [{ env = "HUBSPOT_CLIENT_SECRET" }]

# Only when a proxy maps some other public path to /webhooks/<system>: the full URL that vendor calls
# (HubSpot signs it). Otherwise public_url above plus /webhooks/<system> is used.
[webhooks.public_urls]
# hubspot = "https://hooks.example.com/hubspot"

# The agent API (/agent/... on 'cxbridge serve') and the page of the Zendesk sidebar app (apps/zendesk; build it
# with 'cxbridge zendesk-app build --url https://<this cxbridge>'). Zendesk loads the page from /agent/app with a
# request it signs RS256 with the app's key pair (signedUrls); cxbridge checks it with the app's public key
# (GET /api/v2/apps/{app_id}/public_key.pem), reads the agent it names from Zendesk, and gives the page a session.
# Empty app_public_keys: the API is not served.
# e.g. app_public_keys = [{ file = "/etc/cxbridge/zendesk-app.pem" }]
[agent_api]
app_public_keys = []
# The signed request's iss (your Zendesk account's URL) and aud (the app installation's URL,
# https://<subdomain>.zendesk.com/api/v2/apps/installations/<id>.json).
issuer = ""
audience = ""
# The keys cxbridge signs agent sessions with (32+ characters; the first signs, all verify), and their lifetime,
# e.g. [{ env = "CXBRIDGE_AGENT_SESSION_SECRET" }].
session_secrets = []
session_minutes = 60
# The built app's folder (dist/app): cxbridge serves its assets/ (the page, the script, the vendored ZAF SDK).
app_dir = ""
# Browser origins allowed by CORS; empty: the issuer's origin only.
origins = []
# The largest request body, in bytes (413 beyond).
max_body = 65536

[sync]
# An engineering comment that starts with this is copied to every linked ticket as an internal note.
comment_prefix = "[support]"
# Also copied: comments whose visibility is one of these roles or groups ("Support" or "role:Support").
comment_visibility = []
# Status categories (new, indeterminate, done) or resolution names ("Done", "Fixed") that also get a suggested
# public reply for the agent, written as an internal note (Zendesk has no drafts): the agent copies it into a
# reply. A category is matched exactly (lower case), a resolution in any case.
draft_reply_on = []
# Resolutions that close an issue without a fix: the notes and the drafted reply do not say "resolved".
not_fixed_resolutions = ["Won't Do", "Won't Fix", "Duplicate", "Cannot Reproduce", "Incomplete", "Declined"]
# false: sync back writes no notes on the customer's CRM company.
crm_notes = true
# Sync back to many tickets (and their companies) and a note relayed to many issues: how many writes to one system
# go out at once (each ticket's own writes stay in order; a rate limit on one holds the others). 1: one at a time.
concurrency = 4
# How far back `cxbridge sync` looks on its first run (no checkpoint yet and no --since).
lookback_hours = 24
# Per direction: support -> engineering (notes and replies of linked tickets become comments on the issues) and
# engineering -> support (status changes, [support] comments and releases reach the tickets).
to_tracker = true
to_helpdesk = true
# An internal note starting with this is relayed to every linked issue (attributed, internal where Jira can say so).
engineering_prefix = "[engineering]"
# A ticket carrying this tag (a macro can add it with the note) has every internal note relayed. Empty: prefix only.
engineering_tag = ""
# Also relay public replies (the agent's and the customer's) of linked tickets.
relay_public_replies = false
# Attachments of relayed comments (and of the ticket's first message, at escalation) are uploaded to the issue
# up to this size and of these types, at most attachment_max_files per comment; the others are links to the
# helpdesk's copy. Files are only ever fetched from the helpdesk's own domain. 0: links only.
attachment_max_bytes = 10485760
attachment_types = [
    "image/*",
    "text/plain",
    "text/csv",
    "application/pdf",
    "application/json",
    "application/zip",
    "application/gzip",
    "application/x-har+json",
]
attachment_max_files = 10
# An issue closed as a duplicate of another hands its tickets over to that issue (false: they stay).
carry_duplicates = true

# The helpdesk status linked tickets get when their issue enters a tracker status category (new,
# indeterminate, done). Empty: statuses are left alone and only notes are written.
[sync.status_map]
# done = "open"

# The user cxbridge acts as in each system: changes made by that user are never synced back (echo guard).
[sync.integration_users]
# zendesk = "<the integration agent's user id>"
# jira = "<the integration user's accountId>"
# hubspot = "<the private app's user id>"

[impact]
# Customer tiers, highest first (the "highest tier" value and the cxb-tier-<tier> labels); a tier not listed
# ranks below every listed one.
tiers = ["strategic", "enterprise", "growth", "standard"]
# The currency of the ARR number field (ARR is summed per currency and never converted). Empty: the currency
# with the largest sum; every currency is shown in the issue's "Customer impact" section.
arr_currency = ""
# The "Customer impact" section lists this many customers by ARR (the others as "and N more", in its totals too)
# and this many tickets per customer, so the issue's description stays bounded whatever the number of tickets.
top_customers = 10
tickets_per_customer = 5

# The tracker custom fields that receive the customer-impact rollup, by rollup value (arr, customers, tickets,
# renewal, tier, oldest), so that engineers can sort on them in JQL. Empty: the rollup is only written as text.
[impact.fields]
# arr = "customfield_10100"        # number
# customers = "customfield_10101"  # number
# tickets = "customfield_10102"    # number
# renewal = "customfield_10103"    # date
# tier = "customfield_10104"       # text
# oldest = "customfield_10105"     # date: when the oldest open ticket was opened

[policies]
# Decision rights. Each rule has a condition (a Jinja2 expression over ticket, customer and agent) and grants
# bounded actions: priority_max, credit_max (with currency), skip_triage, reopen, public_reply. The first rule
# whose condition is true and whose grant covers the request grants it. Nothing is granted by default.
# A broken rule (syntax, an unknown name, a sandbox violation) stops the config from loading. For example:
#   [[policies.rules]]
#   name = "tier1-credits"
#   when = "customer.tier in ['enterprise', 'strategic'] and agent.team == 'tier1'"
#   grant = { credit_max = 100, currency = "USD", priority_max = "High", skip_triage = true }
rules = []
# What rules read as agent.*, by agent email: [policies.agents."sam@example.com"] team = "tier1"
agents = {}

[decisions]
# Decisions from a macro: a tag starting with tag_prefix (a macro's "Add tags" action adds it) asks for a
# decision, taken under the policies with the agent who applied the macro as the actor; cxbridge removes the
# tag and writes the outcome as one internal note. "" turns it off. The trigger must send the tag and
# current_user.email (see docs/decisions.md).
tag_prefix = "cxb_decide_"
# What follows the prefix, per action ({value} stands for the value); unset actions keep these, "" turns one off:
#   credit = "credit_{value}"  (cxb_decide_credit_50, cxb_decide_credit_50_eur), priority = "priority_{value}",
#   reopen = "reopen", public_reply = "public_reply"
tag_actions = {}
# The decisions 'cxbridge setup' prepares in Zendesk (what follows tag_prefix, read as above), e.g.
#   macros = ["credit_50", "priority_high", "reopen", "public_reply"]
# Setup then creates the trigger "cxbridge: decide", which sends a ticket carrying any of these tags to
# cxbridge, and one shared macro "cxbridge: ..." per decision that some [[policies.rules]] grant covers (a
# listed decision no rule grants gets no macro: setup lists it as a manual step). Empty: neither.
macros = []
# A public reply from a tag: the agent's own words are their latest internal note ("latest_note"), or "none".
reply_words = "latest_note"

# ----------------------------------------------------------------------------------------------------------
# Systems. The table name is how cxbridge refers to a system; 'plugin' names the connector that serves it
# (the table name when left out). Besides its own keys, every system takes:
#   sandbox = false        true only for a cxbridge sandbox (then http on loopback is allowed)
#   timeout = 30           read timeout, seconds
#   connect_timeout = 5    connect timeout, seconds
#   max_retries = 4        retries of a request that may safely be retried
#   enabled = true         false keeps the table but leaves the system out
# Base URLs are https. Cloud systems must be on their vendor's domain.

[systems.zendesk]
plugin = "zendesk"
base_url = "https://YOURCOMPANY.zendesk.com"
# The agent cxbridge acts as, and an API token (Admin Center > Apps and integrations > APIs > Zendesk API).
email = "integration@yourcompany.com"
api_token = { env = "ZENDESK_API_TOKEN" }
# Or, instead of email and api_token, an OAuth access token:
# oauth_token = { env = "ZENDESK_OAUTH_TOKEN" }
# The custom ticket field (text) that holds the tracker issue key on the ticket. 'cxbridge setup --apply'
# creates it (titled issue_key_field_title) and writes its id here; or REPLACE 0 with the id of your own field
# (Admin Center > Objects and rules > Tickets > Fields).
issue_key_field_id = 0
# issue_key_field_title = "Jira issue key"

[systems.jira]
plugin = "jira"
base_url = "https://YOURCOMPANY.atlassian.net"
# "cloud" (Atlassian Cloud: email and API token) or "datacenter" (your own https host).
deployment = "cloud"
email = "integration@yourcompany.com"
api_token = { env = "JIRA_API_TOKEN" }
# Data Center: deployment = "datacenter", base_url = "https://jira.yourcompany.com" and, instead of email
# and api_token, a personal access token:
# personal_access_token = { env = "JIRA_PAT" }
# The project (key) and issue type that escalations create.
project = "SUP"
issue_type = "Bug"
# Resolutions that mean "a duplicate of the issue it links to as duplicating".
duplicate_resolutions = ["Duplicate"]
# When this Jira names its priorities differently: cxbridge's priority name -> this Jira's (names not listed
# are sent as they are).
# priorities = { Highest = "P1", High = "P2" }
# Behind the api.atlassian.com gateway (base_url = "https://api.atlassian.com/ex/jira/<cloudId>"), the site
# that browse links point at:
# site_url = "https://YOURCOMPANY.atlassian.net"
# Comments relayed from support are restricted to this project role or group ("role:Developers",
# "group:jira-software-users"); empty: visible to whoever sees the issue.
# internal_visibility = "role:Developers"
# A Jira Service Management project: relayed comments are internal notes, never shown on the customer portal.
# service_desk = false

[systems.hubspot]
plugin = "hubspot"
base_url = "https://api.hubapi.com"
# A private app's access token (Settings > Integrations > Private Apps) with the CRM scopes cxbridge uses.
access_token = { env = "HUBSPOT_ACCESS_TOKEN" }
# The company properties that hold the customer's tier, ARR, renewal date and owner: portals name them
# differently, so point these at yours.
tier_property = "tier"
arr_property = "annualrevenue"
renewal_date_property = "renewal_date"
owner_property = "hubspot_owner_id"
# The currency of the ARR property.
currency = "USD"
# Deal stages that mean a deal is no longer open (the rest count as open deals).
closed_deal_stages = ["closedwon", "closedlost"]
# HubSpot tickets as a helpdesk: an agent escalates a ticket by setting escalate_property to escalate_value;
# cxbridge writes the issue key into issue_key_property (an agent may type a key there to join that issue).
# Create both as custom ticket properties. Links to tickets need your account id (portal_id); app_url is
# https://app-eu1.hubspot.com for accounts hosted in the EU.
escalate_property = "cxbridge_escalate"
escalate_value = "true"
issue_key_property = "cxbridge_issue_key"
# Ticket pipeline stage ids that mean closed (a closed ticket's remote link shows resolved on the issue).
closed_ticket_stages = ["4"]
# The app whose webhooks deliver HubSpot's ticket changes: 'cxbridge setup' registers its target URL and
# subscription through HubSpot's webhooks API with the developer account's API key. Without them, setup says
# what to click in the app's settings instead.
# app_id = "1234567"
# developer_api_key = { env = "HUBSPOT_DEVELOPER_API_KEY" }
# portal_id = "12345678"
app_url = "https://app.hubspot.com"
"""
