import pytest
from pydantic import SecretStr

from connector.config import load_config
from connector.errors import ConfigError
from connector.providers.base import Provider, ProviderSettings
from connector.providers.registry import ProviderInfo, Registry


class DemoSettings(ProviderSettings):
    api_key: SecretStr
    page_size: int = 100
    live: bool = False


class DemoGateway(Provider):
    name = "demo"
    kind = "gateway"
    settings_model = DemoSettings
    streams = ("invoices",)

    def read_invoices(self, cursor):
        return iter(())


REGISTRY = Registry([ProviderInfo(name="demo", origin="tests 0", target="tests:DemoGateway", cls=DemoGateway)])


def write(tmp_path, text):
    path = tmp_path / "connector.toml"
    path.write_text(text)
    return str(path)


def test_connection_settings_are_validated_and_env_secrets_resolved(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_KEY", "sk_test_abcdefgh12345678")
    monkeypatch.delenv("CONNECTOR_DATABASE_URL", raising=False)
    path = write(
        tmp_path,
        '[connections.gw]\nprovider = "demo"\nbase_url = '
        '"http://127.0.0.1:1"\napi_key = "env:DEMO_KEY"\npage_size = 50\n',
    )
    config = load_config(path, registry=REGISTRY)
    connection = config.connection("gw")
    assert connection.settings.api_key.get_secret_value() == "sk_test_abcdefgh12345678"
    assert connection.settings.page_size == 50
    assert "sk_test" not in repr(connection.settings)
    assert connection.literal_secrets == []
    assert config.database_url == f"sqlite:///{tmp_path}/connector.db"  # beside the config


def test_unknown_key_names_the_connection_and_key(tmp_path):
    path = write(
        tmp_path, '[connections.gw]\nprovider = "demo"\nbase_url = "http://x"\napi_key = "k123"\napi_kye = "oops"\n'
    )
    with pytest.raises(ConfigError, match=r"connections\.gw\.api_kye: unknown key"):
        load_config(path, registry=REGISTRY)


def test_missing_environment_variable_names_the_key_and_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    path = write(
        tmp_path, '[connections.gw]\nprovider = "demo"\nbase_url = "http://x"\napi_key = "env:NOT_SET_ANYWHERE"\n'
    )
    with pytest.raises(
        ConfigError, match=r"connections\.gw\.api_key: environment variable NOT_SET_ANYWHERE is not set"
    ):
        load_config(path, registry=REGISTRY)


def test_wrong_type_names_the_key(tmp_path):
    path = write(
        tmp_path, '[connections.gw]\nprovider = "demo"\nbase_url = "http://x"\napi_key = "k123"\npage_size = "many"\n'
    )
    with pytest.raises(ConfigError, match=r"connections\.gw\.page_size: must be a whole number, not text$"):
        load_config(path, registry=REGISTRY)


@pytest.mark.parametrize(
    "line, message",
    [
        ("timeout_seconds = true", "timeout_seconds: must be a number, not true"),
        ('timeout_seconds = "abc"', "timeout_seconds: must be a number, not text"),
        ("page_size = false", "page_size: must be a whole number, not false"),
        ("page_size = 2.5", "page_size: must be a whole number, not a number with a fraction"),
        ("source_priority = true", "source_priority: must be a whole number, not true"),
        ("live = 3", "live: must be true or false, not a whole number"),
        ("live = 1", "live: must be true or false, not a whole number"),
        ('live = "abc"', "live: must be true or false, not text"),
        ("api_key = 12345", "api_key: must be text (a quoted string), not a whole number"),
        ("mapping = 3", "mapping: must be a table, not a whole number"),
    ],
)
def test_a_value_of_the_wrong_type_is_named_in_words(tmp_path, line, message):
    """`true` is not 1 and `1` is not true, as pydantic would read them; the message says what
    the key takes, never the value written (it may be a secret)."""
    settings = {"base_url": '"http://x"', "api_key": '"k123"'}
    key, _, value = line.partition(" = ")
    settings[key] = value
    body = "".join(f"{k} = {v}\n" for k, v in settings.items())
    path = write(tmp_path, f'[connections.gw]\nprovider = "demo"\n{body}')
    with pytest.raises(ConfigError) as raised:
        load_config(path, registry=REGISTRY)
    assert str(raised.value) == f"{path}: connections.gw.{message}"
    assert "12345" not in str(raised.value)


def test_text_that_reads_as_the_expected_type_is_taken_as_from_an_env_reference(tmp_path, monkeypatch):
    monkeypatch.setenv("DEMO_PAGE_SIZE", "50")
    monkeypatch.setenv("DEMO_LIVE", "true")
    path = write(
        tmp_path,
        '[connections.gw]\nprovider = "demo"\nbase_url = "http://x"\napi_key = "k123"\n'
        'page_size = "env:DEMO_PAGE_SIZE"\nlive = "env:DEMO_LIVE"\n',
    )
    settings = load_config(path, registry=REGISTRY).connection("gw").settings
    assert (settings.page_size, settings.live) == (50, True)


def test_unknown_provider_lists_the_installed_ones(tmp_path):
    path = write(tmp_path, '[connections.gw]\nprovider = "strype"\nbase_url = "http://x"\n')
    with pytest.raises(ConfigError, match=r"unknown provider 'strype' \(installed: demo\)"):
        load_config(path, registry=REGISTRY)


def test_database_url_from_the_environment_overrides_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("CONNECTOR_DATABASE_URL", "postgresql://postgres@127.0.0.1/test")
    path = write(tmp_path, '[database]\nurl = "sqlite:///other.db"\n')
    assert load_config(path, registry=REGISTRY).database_url == "postgresql://postgres@127.0.0.1/test"


def test_a_named_config_file_must_exist_but_the_default_may_not(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CONNECTOR_CONFIG", raising=False)
    with pytest.raises(ConfigError, match="missing.toml not found"):
        load_config("missing.toml", registry=REGISTRY)
    assert load_config(None, registry=REGISTRY).connections == {}


def test_invalid_toml_is_one_clear_error(tmp_path):
    path = write(tmp_path, "[connections.gw\nprovider=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path, registry=REGISTRY)


def test_doctor_mode_collects_every_bad_connection(tmp_path):
    path = write(
        tmp_path,
        '[connections.a]\nprovider = "demo"\nbase_url = "http://x"\n'
        '[connections.b]\nprovider = "nope"\nbase_url = "http://x"\n',
    )
    config = load_config(path, registry=REGISTRY, strict=False)
    assert len(config.problems) == 2
    assert "connections.a.api_key: required key is missing" in config.problems[0]


def test_a_relative_sqlite_path_lies_beside_the_config_file(tmp_path, monkeypatch):
    monkeypatch.delenv("CONNECTOR_DATABASE_URL", raising=False)
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "connector.toml"
    path.write_text('[database]\nurl = "sqlite:///state/books.db"\n')
    monkeypatch.chdir(tmp_path)
    assert (
        load_config("conf/connector.toml", registry=REGISTRY).database_url
        == f"sqlite:///{tmp_path}/conf/state/books.db"
    )
    path.write_text('[database]\nurl = "sqlite:////var/lib/connector.db"\n')
    assert load_config(str(path), registry=REGISTRY).database_url == "sqlite:////var/lib/connector.db"


def test_reconcile_settings_are_read_as_exact_decimals(tmp_path):
    from decimal import Decimal

    path = write(
        tmp_path,
        "[reconcile]\nauto_threshold = 0.9\ntolerance_fraction = 0.015\n"
        "tolerance_absolute = { jpy = 500, KWD = 0.250 }\nmax_candidates = 3\n"
        "[reconcile.confidence]\npayer_open_invoice = 0.3\n",
    )
    settings = load_config(path, registry=REGISTRY).reconcile
    assert settings.auto_threshold == Decimal("0.9") and isinstance(settings.auto_threshold, Decimal)
    assert settings.tolerance_fraction == Decimal("0.015")
    assert settings.tolerance_absolute == {"JPY": Decimal(500), "KWD": Decimal("0.250")}
    assert settings.max_candidates == 3
    assert settings.confidence.payer_open_invoice == Decimal("0.3")


def test_no_reconcile_table_means_the_default_settings(tmp_path):
    from connector.reconcile import ReconcileConfig

    assert load_config(write(tmp_path, ""), registry=REGISTRY).reconcile == ReconcileConfig()


@pytest.mark.parametrize(
    "text, message",
    [
        ("[reconcile]\nauto_treshold = 0.9\n", r"reconcile\.auto_treshold: unknown key \(known: auto_threshold, "),
        (
            "[reconcile.confidence]\nexact = 0.9\n",
            r"reconcile\.confidence\.exact: unknown key \(known: explicit_link, ",
        ),
        (
            "[reconcile]\ntolerance_fraction = -0.1\n",
            r"reconcile\.tolerance_fraction: Input should be greater than or equal to 0",
        ),
        ("[reconcile]\ntolerance_absolute = { XYZ = 1 }\n", r"reconcile\.tolerance_absolute: unknown currency 'XYZ'"),
        ("[reconcile]\nmax_subset_size = 20\n", r"reconcile\.max_subset_size: Input should be less than or equal to 8"),
        ("reconcile = 1\n", r"reconcile: must be a table"),
        ("[reconcile]\nauto_threshold = true\n", r"reconcile\.auto_threshold: must be a number, not true$"),
        ('[reconcile]\nauto_threshold = "abc"\n', r"reconcile\.auto_threshold: must be a number, not text$"),
        ("[reconcile]\nauto_threshold = nan\n", r"reconcile\.auto_threshold: must be a finite number$"),
        ("[reconcile]\nmax_candidates = true\n", r"reconcile\.max_candidates: must be a whole number, not true$"),
        (
            "[reconcile]\ntolerance_absolute = { USD = false }\n",
            r"reconcile\.tolerance_absolute\.USD: must be a number, not false$",
        ),
        (
            "[reconcile.confidence]\nexplicit_link = true\n",
            r"reconcile\.confidence\.explicit_link: must be a number, not true$",
        ),
    ],
)
def test_a_bad_reconcile_setting_names_the_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), registry=REGISTRY)


# Companies -------------------------------------------------------------------------------


class DemoLedger(Provider):
    name = "demoledger"
    kind = "ledger"
    settings_model = DemoSettings
    streams = ("invoices",)

    def read_invoices(self, cursor):
        return iter(())


COMPANY_REGISTRY = Registry(
    [
        ProviderInfo(name="demo", origin="tests 0", target="tests:DemoGateway", cls=DemoGateway),
        ProviderInfo(name="demoledger", origin="tests 0", target="tests:DemoLedger", cls=DemoLedger),
    ]
)


def connection(name, provider, company=None):
    line = f'company = "{company}"\n' if company else ""
    return f'[connections.{name}]\nprovider = "{provider}"\nbase_url = "http://127.0.0.1:1"\napi_key = "k12345"\n{line}'


def test_a_config_naming_no_company_is_one_default_company(tmp_path):
    path = write(tmp_path, connection("ledger", "demoledger") + connection("gw", "demo"))
    config = load_config(path, registry=COMPANY_REGISTRY)
    assert config.company_names() == ["default"]
    assert list(config.for_company("default").connections) == ["ledger", "gw"]


def test_each_company_sees_its_own_connections_and_policies(tmp_path):
    text = (
        connection("ledger_us", "demoledger", "us")
        + connection("stripe_us", "demo", "us")
        + connection("stripe_us2", "demo", "us")
        + connection("ledger_eu", "demoledger", "eu")
        + '[reconcile]\nauto_threshold = 0.95\n[dunning]\nsteps = [{ days = 7, template = "x" }]\n'
        + '[companies.us]\nlegal_name = "Acme Inc."\n'
        + "[companies.eu.reconcile]\nauto_threshold = 0.99\n"
    )
    config = load_config(write(tmp_path, text), registry=COMPANY_REGISTRY)
    assert config.company_names() == ["eu", "us"]
    us, eu = config.for_company("us"), config.for_company("eu")
    # a company may hold several gateways, and one ledger
    assert list(us.connections) == ["ledger_us", "stripe_us", "stripe_us2"] and list(eu.connections) == ["ledger_eu"]
    assert str(us.reconcile.auto_threshold) == "0.95" and str(eu.reconcile.auto_threshold) == "0.99"
    assert eu.dunning == config.dunning  # no dunning of its own: the default
    assert config.display_name("us") == "Acme Inc." and config.display_name("eu") == "eu"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # two books in one config without companies: they would be merged
        (
            connection("ledger_a", "demoledger") + connection("ledger_b", "demoledger"),
            r"connector\.toml: connections\.ledger_b: a second ledger beside 'ledger_a'",
        ),
        (
            connection("ledger_a", "demoledger", "a") + connection("ledger_b", "demoledger", "a"),
            r"connections\.ledger_b: company 'a' already has the ledger 'ledger_a'",
        ),
        (
            connection("ledger_a", "demoledger", "a") + "[companies.b]\n",
            r"connections\.ledger_a\.company: no company 'a' is declared \(declared: b\)",
        ),
        (
            connection("ledger_a", "demoledger", "a") + connection("gw", "demo"),
            r"connections\.gw: names no company while others do \(a\)",
        ),
        (connection("gw", "demo", "all"), r"connections\.gw\.company: 'all' cannot name a company"),
        (connection("gw", "demo", "a b"), r"connections\.gw\.company: a company name is"),
        ("[companies.a]\ncolour = 1\n", r"companies\.a\.colour: unknown key"),
        ("[companies.a.reconcile]\nauto_threshold = 2\n", r"companies\.a\.reconcile\.auto_threshold"),
    ],
)
def test_a_config_that_would_mix_books_is_refused_in_one_line(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(write(tmp_path, text), registry=COMPANY_REGISTRY)
    assert "\n" not in str(caught.value)


def test_the_default_company_may_be_declared_for_its_legal_name(tmp_path):
    """An upgraded single-company deployment keeps its company `default` and names it."""
    text = connection("ledger", "demoledger") + connection("gw", "demo") + '[companies.default]\nlegal_name = "Acme"\n'
    config = load_config(write(tmp_path, text), registry=COMPANY_REGISTRY)
    assert config.company_names() == ["default"] and config.display_name("default") == "Acme"
    assert list(config.for_company("default").connections) == ["ledger", "gw"]
