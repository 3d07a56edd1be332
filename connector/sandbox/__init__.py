"""Stateful fakes of Stripe, Xero and HubSpot over real HTTP on loopback (see docs/sandbox.md)."""

from connector.sandbox.datafile import SandboxDataError, check_data, read_data
from connector.sandbox.server import PROVIDERS, ListenError, Sandbox, SandboxState, serve

__all__ = [
    "PROVIDERS",
    "ListenError",
    "Sandbox",
    "SandboxDataError",
    "SandboxState",
    "check_data",
    "read_data",
    "serve",
]
