"""cxbridge's built-in HubSpot plugin: the connector, its webhook verifier and its sandbox emulator."""
