"""Xero (accounting ledger): entry point `providers.xero:XeroProvider`."""

from providers.xero.provider import XeroProvider
from providers.xero.settings import XeroSettings

__all__ = ["XeroProvider", "XeroSettings"]
