"""The Zendesk Support emulator (``backend.ZendeskBackend``): models, routes, errors and seeds."""
