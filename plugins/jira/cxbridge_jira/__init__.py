"""cxbridge's built-in Jira plugin: the connector, its webhook verifier and its sandbox emulator."""
