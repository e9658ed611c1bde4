"""One HTTP layer for every connector: sessions, auth, the error table, retries, call counts, redaction.

Implementation lives in the submodules; connectors import from here.

Contract (what connectors rely on):

``HttpClient(system_config, *, auth, error_message=..., counter=None, default_headers=None, cloud_domains=(),
allow_any_https_host=False, session=None, sleep=time.sleep, max_inline_wait=60.0)``

``client.request(method, path_or_url, *, op, params=None, json=None, data=None, headers=None, creates=False,
ok=None) -> requests.Response``
    ``path_or_url`` is relative to the base URL, or an absolute URL whose origin must equal the base URL's
    (pagination links). ``op`` names the operation for the call counts (``tickets.show``). ``creates=True``
    marks a non-idempotent POST: retried only where the request was certainly not processed (connect errors,
    429); a read timeout, a reset after send, or a 500/502/504 raises ``AmbiguousOutcome``. Non-success
    statuses raise the typed errors of ``cxbridge.errors`` with the vendor's own message (from
    ``error_message(response)``). Redirects are never followed.
``client.get/post/put/patch/delete(path, *, op, **kw)`` are shorthands.
``client.base_url``; ``client.counter`` (a ``CallCounter``).
"""

from __future__ import annotations
