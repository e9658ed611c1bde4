"""cxbridge's built-in Zendesk plugin: the connector, its webhook verifier and its sandbox emulator."""
