import json

LEDGER = """
[connections.ledger]
provider = "xero"
base_url = "http://127.0.0.1:9/xero"
tenant_id = "3c2f1e1a-1111-4444-8888-123456789abc"
client_id = "client"
client_secret = "env:XERO_CLIENT_SECRET"
refresh_token = "env:XERO_REFRESH_TOKEN"
"""


def config(tmp_path, monkeypatch, extra=""):
    monkeypatch.setenv("XERO_CLIENT_SECRET", "cs-123456")
    monkeypatch.setenv("XERO_REFRESH_TOKEN", "rt-123456")
    (tmp_path / "connector.toml").write_text(LEDGER + extra)


def test_mappings_show_prints_the_providers_mapping(run_cli):
    for provider in ("stripe", "xero", "hubspot"):
        result = run_cli("mappings", "show", provider)
        assert result.exit_code == 0, result.stderr
        spec = json.loads(result.stdout)
        assert spec["provider"] == provider and spec["streams"]


def test_an_override_in_the_config_changes_the_effective_mapping(run_cli, tmp_path, monkeypatch):
    config(tmp_path, monkeypatch, '\n[connections.ledger.mapping.status_maps.invoice_status]\nSUBMITTED = "open"\n')
    shown = json.loads(run_cli("mappings", "show", "xero", "--connection", "ledger").stdout)
    assert shown["status_maps"]["invoice_status"]["SUBMITTED"] == "open"
    default = json.loads(run_cli("mappings", "show", "xero").stdout)
    assert default["status_maps"]["invoice_status"]["SUBMITTED"] != "open"
    check = run_cli("mappings", "check")
    assert check.exit_code == 0 and "ledger: xero mapping" in check.stdout and "with overrides" in check.stdout


def test_a_bad_override_is_reported_naming_the_connection(run_cli, tmp_path, monkeypatch):
    config(tmp_path, monkeypatch, '\n[connections.ledger.mapping.streams.invoices.fields]\nnumbr = "InvoiceNumber"\n')
    check = run_cli("mappings", "check")
    assert check.exit_code == 2
    assert "connections.ledger.mapping" in check.stdout and "numbr" in check.stdout


def test_doctor_accepts_a_valid_connection_and_warns_about_literal_secrets(run_cli, tmp_path, monkeypatch):
    config(tmp_path, monkeypatch)
    text = (tmp_path / "connector.toml").read_text().replace('"env:XERO_REFRESH_TOKEN"', '"rt-literal-123"')
    (tmp_path / "connector.toml").write_text(text)
    result = run_cli("doctor", "--json")
    report = json.loads(result.stdout)
    assert result.exit_code == 0, report
    warnings = [c["detail"] for c in report["checks"] if c["status"] == "warning"]
    assert any("refresh_token is written in the file" in w for w in warnings), warnings
    assert "rt-literal-123" not in result.stdout


def test_mappings_check_and_show_take_the_config_after_the_command(run_cli, tmp_path, monkeypatch):
    """`connector mappings check --config PATH`, as the adapters issue writes it."""
    config(tmp_path, monkeypatch, '\n[connections.ledger.mapping.status_maps.invoice_status]\nSUBMITTED = "open"\n')
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "connector.toml").rename(tmp_path / "elsewhere" / "ledger.toml")
    check = run_cli("mappings", "check", "--config", "elsewhere/ledger.toml")
    assert check.exit_code == 0 and "ledger: xero mapping, " in check.stdout and "with overrides" in check.stdout
    shown = run_cli("mappings", "show", "xero", "--connection", "ledger", "--config", "elsewhere/ledger.toml")
    assert json.loads(shown.stdout)["status_maps"]["invoice_status"]["SUBMITTED"] == "open"
    missing = run_cli("mappings", "check", "--config", "nowhere.toml")
    assert missing.exit_code == 2 and "nowhere.toml not found" in missing.stderr
