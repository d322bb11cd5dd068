"""Real HTTP servers that speak the protocols Chorus's tasks call (OpenAI, Jira, webhooks), for tests."""
