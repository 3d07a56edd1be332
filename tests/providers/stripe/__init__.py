"""Tests of `connector.providers.stripe`."""
