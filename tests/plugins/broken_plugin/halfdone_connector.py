"""Imports fine but breaks the contract: declares an action it does not implement."""

from connector.providers.base import Provider, ProviderSettings


class HalfDone(Provider):
    name = "halfdone"
    kind = "gateway"
    settings_model = ProviderSettings
    streams = ()
    actions = ("mark_paid",)
