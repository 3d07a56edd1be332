"""Stateful fakes of Stripe, Xero and HubSpot over real HTTP on loopback (see docs/sandbox.md)."""

from connector.sandbox.server import PROVIDERS, Sandbox, SandboxState, read_data, serve

__all__ = ["PROVIDERS", "Sandbox", "SandboxState", "read_data", "serve"]
