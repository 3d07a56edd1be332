"""Xero (accounting ledger): entry point `providers.xero:XeroProvider`."""

from connector.providers.xero.provider import XeroProvider
from connector.providers.xero.settings import XeroSettings

__all__ = ["XeroProvider", "XeroSettings"]
