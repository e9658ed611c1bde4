"""cxbridge plugin for AcmeDesk, an invented helpdesk (see ``connector`` for its REST API)."""
