"""HTTP stand-ins for the vendors the bot talks to (Slack, Jira, pagers), on loopback."""
