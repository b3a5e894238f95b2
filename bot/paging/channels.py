"""The paging channels: Slack DM (built in) and one registration per provider; pure data.

Adding a provider is its module in `bot/paging/providers/` (the adapter and a `build` function)
plus one entry in `PROVIDERS`. Everything else reads this list: the policy file's `paging` keys
and the channels a step may name, the labels in texts, the outbox kinds, which channels reach
one person, what counts as configured, the check-config message, and the composition root,
which alone imports the factories (by name, so nothing here pulls in an HTTP client).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

__all__ = [
    "CHANNELS",
    "CHANNEL_LABELS",
    "CHANNEL_NAMES",
    "PERSON_CHANNELS",
    "PROVIDERS",
    "PROVIDER_CHANNELS",
    "SLACK_DM",
    "PagingChannel",
    "configured",
    "paging_keys",
    "provider_keys_text",
]


@dataclass(frozen=True)
class PagingChannel:
    """One way to page: its name in the policy file, its label, what configures it.

    `person`: it addresses one person (PagerDuty instead pages whoever its own service's
    schedule names). `keys`: the `paging` keys of the policy file that configure it, all needed;
    `secret`: the key of the secret it signs with, checked for strength. `factory`:
    "module:function" building its Pager from the settings and the `paging` section.
    """

    name: str
    label: str
    person: bool
    kind: str
    keys: tuple[str, ...] = ()
    secret: str | None = None
    factory: str | None = None


SLACK_DM = PagingChannel(name="slack_dm", label="Slack DM", person=True, kind="page.slack_dm")

PROVIDERS: tuple[PagingChannel, ...] = (
    PagingChannel(
        name="pagerduty",
        label="PagerDuty",
        person=False,
        kind="page.pagerduty",
        keys=("pagerduty_routing_key",),
        factory="bot.paging.providers.pagerduty:build",
    ),
    PagingChannel(
        name="opsgenie",
        label="Opsgenie",
        person=True,
        kind="page.opsgenie",
        keys=("opsgenie_api_key",),
        factory="bot.paging.providers.opsgenie:build",
    ),
    PagingChannel(
        name="webhook",
        label="webhook",
        person=True,
        kind="page.webhook",
        keys=("webhook_url",),
        secret="webhook_secret",
        factory="bot.paging.providers.webhook:build",
    ),
)

CHANNELS: Mapping[str, PagingChannel] = {c.name: c for c in (SLACK_DM, *PROVIDERS)}
CHANNEL_NAMES: tuple[str, ...] = tuple(CHANNELS)
CHANNEL_LABELS: Mapping[str, str] = {c.name: c.label for c in CHANNELS.values()}
PROVIDER_CHANNELS: tuple[str, ...] = tuple(p.name for p in PROVIDERS)
PERSON_CHANNELS: tuple[str, ...] = tuple(c.name for c in CHANNELS.values() if c.person)


def paging_keys() -> tuple[str, ...]:
    """Return every key the policy file's `paging` section may set, in registration order."""
    keys: list[str] = []
    for p in PROVIDERS:
        keys.extend(p.keys)
        if p.secret:
            keys.append(p.secret)
    return tuple(dict.fromkeys(keys))


def configured(channel: str, value: Callable[[str], str | None]) -> bool:
    """Return True if `channel` can page: Slack DM always, a provider when its keys are set."""
    found = CHANNELS.get(channel)
    if found is None:
        return False
    return all(value(key) for key in found.keys)


def provider_keys_text() -> str:
    """Return the keys that configure a provider, for messages: "a, b, c"."""
    return ", ".join(key for p in PROVIDERS for key in p.keys)
