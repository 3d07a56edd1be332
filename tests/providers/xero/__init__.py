"""Tests of `connector.providers.xero`."""
