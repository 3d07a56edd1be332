"""Tests of `connector.providers`."""
