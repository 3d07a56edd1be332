"""QuickBooks Online (accounting ledger), a partner-style plugin: entry point
`connector_quickbooks:QuickBooksProvider` in the group `connector.providers`.

It imports only the connector's public plugin API, `connector.plugin` (its tests add
`connector.plugin_testing`)."""

from connector_quickbooks.provider import QuickBooksProvider
from connector_quickbooks.settings import QuickBooksSettings

__all__ = ["QuickBooksProvider", "QuickBooksSettings"]
