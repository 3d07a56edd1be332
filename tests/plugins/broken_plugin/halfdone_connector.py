"""Imports fine but breaks the contract: declares an action it does not implement."""

from connector.plugin import Provider, ProviderSettings


class HalfDone(Provider):
    name = "halfdone"
    kind = "gateway"
    settings_model = ProviderSettings
    streams = ()
    actions = ("mark_paid",)
