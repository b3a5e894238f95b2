"""Typed settings from the environment: the only place the environment is read."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_DATABASE_URL = "sqlite:///./ai-incident.db"


class Settings(BaseSettings):
    """Process settings; secrets are SecretStr so they never print."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    database_url: str = DEFAULT_DATABASE_URL
    ai_incident_config: Path = Path("./ai-incident.yml")
    ai_incident_webhook_token: SecretStr | None = None
    jira_url: str | None = None
    jira_user: str | None = None
    jira_api_token: SecretStr | None = None
    jira_project: str | None = None
    pagerduty_events_url: str = "https://events.pagerduty.com/v2/enqueue"
    opsgenie_api_url: str = "https://api.opsgenie.com"
    max_body_bytes: int = Field(default=1024 * 1024, alias="AI_INCIDENT_MAX_BODY_BYTES")
    log_level: str = Field(default="INFO", alias="AI_INCIDENT_LOG_LEVEL")

    @property
    def jira_configured(self) -> bool:
        """Return True when tickets go to a real Jira (URL and token set), else they print."""
        token = self.jira_api_token.get_secret_value() if self.jira_api_token else ""
        return bool(self.jira_url and token)

    @property
    def local_mode(self) -> bool:
        """Return True when no Slack token is set: print instead of calling Slack."""
        return self.slack_bot_token is None or not self.slack_bot_token.get_secret_value()


def environment() -> Mapping[str, str]:
    """Return the process environment, for `${VAR}` interpolation in the policy file."""
    return os.environ
