"""The default handoff templates (Jinja2). Admins override any of them by name from their own folders."""
