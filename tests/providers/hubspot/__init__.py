"""Tests of `connector.providers.hubspot`."""
