"""QuickBooks Online (accounting ledger), a partner-style plugin: entry point
`connector_quickbooks:QuickBooksProvider` in the group `connector.providers`.

It imports only the connector's public plugin API: `providers.base`, `connector.http`,
`connector.model`, `connector.money`, `connector.errors` and `mappings`."""

from connector_quickbooks.provider import QuickBooksProvider
from connector_quickbooks.settings import QuickBooksSettings

__all__ = ["QuickBooksProvider", "QuickBooksSettings"]
