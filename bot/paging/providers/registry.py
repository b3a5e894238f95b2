"""Build the Pager of every registered provider (bot.paging.channels), for the composition root.

A provider whose `paging` keys are set gets its adapter from its registered factory; one that
is not configured prints its pages instead, saying which key is missing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import TextIO, cast

from bot.paging.channels import PROVIDERS, PagingChannel
from bot.paging.policy import PagingProviders
from bot.paging.providers.console import ConsolePager
from bot.paging.providers.ports import Pager
from bot.settings import Settings

__all__ = ["Factory", "factory_of", "provider_pagers"]

Factory = Callable[[Settings, Mapping[str, str]], Pager]


def factory_of(provider: PagingChannel) -> Factory:
    """Import the provider's registered factory ("module:function")."""
    if provider.factory is None:
        raise ValueError(f"paging channel {provider.name!r} has no factory")
    module, _, name = provider.factory.partition(":")
    return cast(Factory, getattr(importlib.import_module(module), name))


def provider_pagers(
    settings: Settings, paging: PagingProviders, console: TextIO | None = None
) -> dict[str, Pager]:
    """Return a Pager per provider: the real one where configured, else one that prints."""
    pagers: dict[str, Pager] = {}
    for provider in PROVIDERS:
        missing = [key for key in provider.keys if not paging.value(key)]
        if missing:
            why = f"paging.{missing[0]} is not set"
            pagers[provider.name] = ConsolePager(provider.label, console, why=why)
            continue
        keys = {
            key: value
            for key in (*provider.keys, *([provider.secret] if provider.secret else []))
            if (value := paging.value(key))
        }
        pagers[provider.name] = factory_of(provider)(settings, keys)
    return pagers
