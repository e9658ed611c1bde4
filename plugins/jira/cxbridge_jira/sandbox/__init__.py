"""The Jira emulator (Cloud and Data Center); ``backend.JiraBackend`` is what the plugin registers."""
