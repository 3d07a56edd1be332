"""The public plugin API for a plugin's tests: the conformance kit and what a test of a
mapping needs. Only a plugin's tests import it; the plugin's code imports `connector.plugin`.

    provider_test_class     the standard tests, three lines in the plugin's tests:
                            TestAcme = provider_test_class(AcmeLedger, settings=..., fixtures="tests/fixtures")
    MoneyCase, RecordCase, ActionCase
                            cases given in Python (money=, voids=, actions=) beside kit.toml's
    json_response           an httpx.Response with an exact JSON body, for a `router=` fake
    sandbox_api             the connector's sandbox in process, as `router=`
    load_mapping            the plugin's mapping file as the engine loads it: map_one(stream, raw)
    MappingError            what map_one raises for a raw record that cannot be mapped
    invoice_position        what the engine derives from a mapped invoice (balance, status)

It is a module of its own because the kit runs under pytest and intercepts requests with
respx: importing it needs the connector's test extra (`pip install "ar-connector[test]"`),
which a plugin's tests have and its runtime does not. `connector.plugin` never imports it.
Everything else of `connector.testing` is internal.
"""

from connector.errors import MappingError
from connector.mappings.mapper import load_mapping
from connector.model import invoice_position
from connector.testing import (
    ActionCase,
    MoneyCase,
    RecordCase,
    json_response,
    provider_test_class,
    sandbox_api,
)

__all__ = [
    "ActionCase",
    "MappingError",
    "MoneyCase",
    "RecordCase",
    "invoice_position",
    "json_response",
    "load_mapping",
    "provider_test_class",
    "sandbox_api",
]
