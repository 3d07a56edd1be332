"""The conformance test kit for provider plugins, shipped with the connector.

In a partner's repository, three lines give the standard tests (docs/plugins.md):

    from connector.plugin_testing import provider_test_class
    from acme_connector import AcmeLedger, AcmeSettings
    TestAcme = provider_test_class(
        AcmeLedger, settings=AcmeSettings(base_url="https://api.acme.test", api_key="k"), fixtures="tests/fixtures"
    )

(`connector.plugin_testing` is the partners' door to this package.)

    provider_test_class   the generated pytest class (suite.py)
    KitConfig & cases     MoneyCase, RecordCase, ActionCase, Route; kit.toml (config.py)
    KitServer             the wire under test: logs, injects 429/401/loops (server.py)
    RecordedApi           recorded answers as an API;  sandbox_api  our sandbox in process
"""

from connector.testing.config import (
    ActionCase,
    KitConfig,
    KitSetupError,
    MoneyCase,
    RecordCase,
    Route,
    load_manifest,
)
from connector.testing.server import (
    KitAbort,
    KitServer,
    RecordedApi,
    RecordingTokenStore,
    json_response,
    sandbox_api,
)
from connector.testing.suite import provider_test_class

__all__ = [
    "ActionCase",
    "KitAbort",
    "KitConfig",
    "KitServer",
    "KitSetupError",
    "MoneyCase",
    "RecordCase",
    "RecordedApi",
    "RecordingTokenStore",
    "Route",
    "json_response",
    "load_manifest",
    "provider_test_class",
    "sandbox_api",
]
