"""A refused credential holds its connection's writes (unsent, no attempt counted, the reason
shown) until the credential changes or a person retries; the other connections go on."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from connector.config import load_config
from connector.demo import DEMO_CREDENTIALS
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from connector.service.loop import Service
from connector.state import outbox
from connector.state.store import Store, open_store
from connector.writeback.apply import apply
from support.apply_crash import prepare
from support.e2e import with_credentials, write_counts

pytestmark = pytest.mark.slow

OLD_KEY = DEMO_CREDENTIALS["stripe"][0]
NEW_KEY = "sk_test_sandbox_rotated"


def revoke_stripe_key(sandbox: Sandbox) -> None:
    """Stripe takes only a new key from now on: the configured one is refused (401)."""
    with sandbox.lock:
        sandbox.faces["stripe"].keys = {NEW_KEY}  # type: ignore[union-attr]


def stripe_requests(sandbox: Sandbox) -> int:
    traffic = sandbox.traffic().get("stripe")
    return traffic.requests if traffic else 0


def accepted(journal: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The requests a provider took (a refused credential's answer changed nothing)."""
    return [e for e in journal if int(e.get("status") or 0) < 400]


def by_connection(store: Store, connection: str) -> list[outbox.OutboxEntry]:
    with store.session() as session:
        return outbox.entries(session, connections=[connection])


def test_a_revoked_api_key_holds_the_gateway_until_the_key_changes(tmp_path: Path, run_cli) -> None:
    book = with_credentials(generate(9, "small", today=date.today()).data)
    with Sandbox(book, limits="off") as sandbox:
        config_path = prepare(sandbox, tmp_path / "book")
        revoke_stripe_key(sandbox)
        store = open_store(load_config(str(config_path)).database_url)
        gateway_writes = len(by_connection(store, "gateway"))
        before = stripe_requests(sandbox)

        report = apply(load_config(str(config_path)), store)

        # one refused request, then the gateway's writes wait; the ledger and the CRM are done
        assert stripe_requests(sandbox) == before + 1
        assert set(report.held) == {"gateway"} and report.held["gateway"].waiting == gateway_writes
        assert not report.failed and not report.parked
        for name in ("ledger", "crm"):
            assert {e.action.state for e in by_connection(store, name)} == {"done"}
        held = by_connection(store, "gateway")
        assert all(outbox.is_held(e) and e.attempts == 0 for e in held)
        assert "stripe refused the credential of connection gateway" in (held[0].last_error or "")

        # `actions list` says why, and shows no moment: none is known
        listed = run_cli("--config", str(config_path), "actions", "list")
        assert listed.exit_code == 0
        assert "waits for a new credential" in listed.stdout
        assert "connector actions retry --connection gateway" in listed.stdout
        assert "next attempt" not in listed.stdout
        assert OLD_KEY not in listed.stdout + listed.stderr

        # a later run sends nothing to a credential that has not changed
        again = apply(load_config(str(config_path)), store)
        assert stripe_requests(sandbox) == before + 1
        assert again.held["gateway"].waiting == gateway_writes and not again.done

        # an operator retry with the key still refused: one request, held again, nothing counted
        retried = run_cli("--config", str(config_path), "actions", "retry", "--connection", "gateway")
        assert retried.exit_code == 0 and f"{gateway_writes} writes of gateway queued again" in retried.stdout
        applied = run_cli("--config", str(config_path), "apply", "--yes")
        assert applied.exit_code == 0, applied.stderr  # waiting writes are no failure
        assert f"gateway: {gateway_writes} writes wait for a new credential (none counted" in applied.stdout
        assert stripe_requests(sandbox) == before + 2
        assert all(outbox.is_held(e) and e.attempts == 0 for e in by_connection(store, "gateway"))

        # the new key in the config: the writes go, each once
        config_path.write_text(config_path.read_text().replace(OLD_KEY, NEW_KEY))
        resumed = apply(load_config(str(config_path)), store)
        store.close()
        journal = list(sandbox.journal)

    assert resumed.resumed == {"gateway": gateway_writes} and not resumed.held
    assert {e.action.connection for e in resumed.done} == {"gateway"}
    assert len(resumed.done) == gateway_writes
    assert max(write_counts(accepted(journal)).values()) == 1


def test_metrics_show_the_connection_whose_credential_was_refused(tmp_path: Path) -> None:
    book = with_credentials(generate(9, "small", today=date.today()).data)
    with Sandbox(book, limits="off") as sandbox:
        config_path = prepare(sandbox, tmp_path / "book")
        revoke_stripe_key(sandbox)
        config = load_config(str(config_path))
        store = open_store(config.database_url)
        gateway_writes = len(by_connection(store, "gateway"))
        service = Service(config, store, timedelta(hours=1))
        service.run(max_ticks=1)
        exposition = service.metrics.exposition().decode()
        store.close()

    def sample(connection: str, reason: str) -> float:
        label = f'connector_connection_deferred{{company="default",connection="{connection}",reason="{reason}"}}'
        [line] = [line for line in exposition.splitlines() if line.startswith(label)]
        return float(line.rsplit(" ", 1)[1])

    assert sample("gateway", "credential") == gateway_writes
    assert sample("crm", "credential") == 0 and sample("ledger", "credential") == 0


def revoke_hubspot_app(sandbox: Sandbox) -> None:
    """The portal uninstalled the app: its access and refresh tokens are refused from now on."""
    with sandbox.lock:
        issuer = sandbox.faces["hubspot"].oauth  # type: ignore[union-attr]
        issuer.access_tokens.clear()
        issuer.refresh_tokens.clear()
        issuer.spent.clear()


def test_a_refused_refresh_token_holds_the_crm_until_it_is_authorised_again(tmp_path: Path, run_cli) -> None:
    book = with_credentials(generate(9, "small", today=date.today()).data)
    with Sandbox(book, limits="off") as sandbox:
        config_path = prepare(sandbox, tmp_path / "book")
        revoke_hubspot_app(sandbox)
        store = open_store(load_config(str(config_path)).database_url)
        crm_writes = len(by_connection(store, "crm"))

        report = apply(load_config(str(config_path)), store)

        assert set(report.held) == {"crm"} and report.held["crm"].waiting == crm_writes
        assert not report.failed and not report.parked
        assert {e.action.state for e in by_connection(store, "ledger")} == {"done"}
        held = by_connection(store, "crm")
        assert all(outbox.is_held(e) and e.attempts == 0 for e in held)
        assert "`connector tokens forget crm`" in (held[0].last_error or "")

        # authorised again: a new refresh token in the config, the stored tokens forgotten
        with sandbox.lock:
            sandbox.faces["hubspot"].oauth.refresh_tokens.add("sandbox-hubspot-refresh-new")  # type: ignore[union-attr]
        old_refresh = DEMO_CREDENTIALS["hubspot"]["refresh_token"]
        config_path.write_text(config_path.read_text().replace(old_refresh, "sandbox-hubspot-refresh-new"))
        forgotten = run_cli("--config", str(config_path), "tokens", "forget", "crm", "--yes")
        assert forgotten.exit_code == 0, forgotten.stderr
        resumed = apply(load_config(str(config_path)), store)
        store.close()
        journal = list(sandbox.journal)

    assert resumed.resumed == {"crm": crm_writes} and not resumed.held
    assert len(resumed.done) == crm_writes
    # the one write refused for the token had no effect; every write that took, took once
    assert max(write_counts(accepted(journal)).values()) == 1
