import json

from connector import __version__


def test_version(run_cli):
    result = run_cli("--version")
    assert result.exit_code == 0
    assert __version__ in result.stdout


def test_missing_config_file_is_one_line_and_exit_2(run_cli):
    result = run_cli("--config", "missing.toml", "doctor")
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "missing.toml not found" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_with_a_bad_key_is_one_line_and_exit_2(run_cli, tmp_path):
    (tmp_path / "bad.toml").write_text('[database]\nurll = "sqlite:///x.db"\n')
    result = run_cli("--config", "bad.toml", "db", "status")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: bad.toml: database.urll: unknown key"


def test_unknown_top_level_table_is_refused(run_cli, tmp_path):
    (tmp_path / "bad.toml").write_text('[conections.gw]\nprovider = "stripe"\n')
    result = run_cli("--config", "bad.toml", "doctor")
    assert result.exit_code == 2
    assert "conections: unknown table" in result.stderr


def test_bad_cli_argument_is_a_usage_error(run_cli):
    result = run_cli("providers", "list", "--jsn")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: No such option '--jsn'. Did you mean '--json'? (see `connector providers list --help`)"
    )


def test_a_bad_choice_is_one_line_naming_the_choices(run_cli):
    result = run_cli("plugin", "new", "acme", "--kind", "bank")
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "'--kind'" in result.stderr and "'ledger', 'crm', 'gateway'" in result.stderr


def test_doctor_with_a_bad_connection_key_is_one_line_and_exit_2(run_cli, tmp_path, monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_doctor")
    (tmp_path / "connector.toml").write_text(
        '[connections.gateway]\nprovider = "stripe"\napi_key = "env:STRIPE_API_KEY"\napi_kee = "x"\n'
    )
    result = run_cli("doctor")
    assert result.exit_code == 2
    assert result.stderr.strip() == "error    config: connector.toml: connections.gateway.api_kee: unknown key"
    assert result.stdout == ""


def test_config_errors_about_secret_keys_keep_their_words(run_cli, tmp_path):
    """The secret masking must not eat the message: `api_key: environment ...` names a key."""
    (tmp_path / "connector.toml").write_text(
        '[connections.gateway]\nprovider = "stripe"\napi_key = "env:NOPE_NOT_SET"\n'
    )
    result = run_cli("sync")
    assert result.exit_code == 2
    assert result.stderr.strip() == (
        "error: connector.toml: connections.gateway.api_key: environment variable NOPE_NOT_SET is not set"
    )
    (tmp_path / "connector.toml").write_text(
        '[connections.crm]\nprovider = "hubspot"\naccess_token = "env:HOME"\npassword = "x"\n'
    )
    assert "connections.crm.password: unknown key" in run_cli("doctor").stderr


def test_a_database_url_we_cannot_use_is_a_config_error(run_cli, tmp_path):
    for url, expected in (
        ("nonsense", "database.url: not a database URL: nonsense"),
        ("mysql://u:hunter22@h/db", "database.url: 'mysql' databases are not supported"),
    ):
        (tmp_path / "connector.toml").write_text(f'[database]\nurl = "{url}"\n')
        for command in (("db", "upgrade"), ("doctor",)):
            result = run_cli(*command)
            assert result.exit_code == 2, (command, result)
            assert expected in result.stderr and result.stderr.count("\n") == 1
            assert "hunter22" not in result.stderr


def test_doctor_does_not_create_the_database_it_checks(run_cli, tmp_path):
    (tmp_path / "connector.toml").write_text('[database]\nurl = "sqlite:///state.db"\n')
    result = run_cli("doctor")
    assert result.exit_code == 0
    assert "does not exist yet; created on first use" in result.stdout
    assert not (tmp_path / "state.db").exists()


def test_init_writes_a_config_that_doctor_accepts_and_refuses_to_overwrite(run_cli, tmp_path):
    assert run_cli("init").exit_code == 0
    text = (tmp_path / "connector.toml").read_text()
    assert 'api_key = "env:STRIPE_API_KEY"' in text
    again = run_cli("init")
    assert again.exit_code == 2 and "already exists" in again.stderr
    doctor = run_cli("doctor", "--json")
    report = json.loads(doctor.stdout)
    assert report["ok"] is True, report
    assert doctor.exit_code == 0


def test_providers_list_json_is_valid_json(run_cli):
    result = run_cli("providers", "list", "--json")
    assert result.exit_code == 0
    for row in json.loads(result.stdout)["providers"]:
        assert {"name", "status", "origin"} <= set(row)


def test_doctor_reports_a_bad_dunning_table(run_cli, tmp_path):
    (tmp_path / "connector.toml").write_text('[dunning]\nsteps = [{ days = 1, tone = "x", channel = "fax" }]\n')
    result = run_cli("doctor")
    assert result.exit_code == 2  # a configuration error, as for every other command
    assert "dunning" in result.stdout and "error" in result.stdout


def test_json_logs_carry_the_run_and_the_stream(tmp_path):
    import logging

    from connector.logs import JsonFormatter

    record = logging.LogRecord("connector.sync", logging.WARNING, __file__, 1, "stream deferred: %s", ("x",), None)
    record.run_id, record.connection, record.stream = "run-1", "ledger", "invoices"
    line = json.loads(JsonFormatter().format(record))
    assert (line["run_id"], line["connection"], line["stream"], line["message"]) == (
        "run-1",
        "ledger",
        "invoices",
        "stream deferred: x",
    )
