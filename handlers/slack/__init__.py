"""Slack edges: the Bolt app and its listeners, one module per surface."""
