"""AR connector: CRM, ledger and gateway invoices in one canonical model."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ar-connector")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = ["__version__"]
