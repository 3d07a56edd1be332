"""Webhooks in a deployment of two companies: an event is kept with its connection's company,
and it makes that connection's pulls and that company's reconcile due, never the other's."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from webhooks.signing import stripe_signed

from connector.config import load_config
from connector.service.listener import Listener
from connector.service.loop import Service, pull_unit, reconcile_unit
from connector.state import units as work
from connector.state.store import open_store

SECRETS = {"us_gateway": "whsec_acme_us", "eu_gateway": "whsec_beta_eu"}
CONFIG = """
[database]
url = "sqlite:///{db}"

[companies.acme]
[companies.beta]

[connections.us_gateway]
provider = "stripe"
company = "acme"
base_url = "http://127.0.0.1:9/stripe"
api_key = "sk_test_acme"
webhook_secret = "{us}"

[connections.eu_gateway]
provider = "stripe"
company = "beta"
base_url = "http://127.0.0.1:9/stripe"
api_key = "sk_test_beta"
webhook_secret = "{eu}"
"""
TICK = 1000
STREAMS = ("charges", "refunds")


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    path = tmp_path / "connector.toml"
    path.write_text(CONFIG.format(db=tmp_path / "state.db", us=SECRETS["us_gateway"], eu=SECRETS["eu_gateway"]))
    config = load_config(str(path))
    store = open_store(config.database_url)
    svc = Service(config, store, timedelta(hours=1))
    declared = [
        work.Declared(pull_unit(name, stream), "pull", name, stream, company)
        for name, company in (("us_gateway", "acme"), ("eu_gateway", "beta"))
        for stream in STREAMS
    ] + [work.Declared(reconcile_unit(c), "reconcile", None, None, c) for c in ("acme", "beta")]
    with store.session() as session:  # one tick, done: nothing is due until an event comes
        work.ensure_units(session, declared)
        work.schedule_tick(session, [d.unit for d in declared], TICK)
        while claimed := work.claim(session, "host:1", lease=timedelta(minutes=1), kinds=work.SCHEDULED_KINDS):
            work.finish(session, claimed[0], "host:1", error=None)
    yield svc
    store.close()


def charge_refunded(event_id: str, secret: str) -> tuple[bytes, dict[str, str]]:
    event = {
        "id": event_id,
        "object": "event",
        "type": "charge.refunded",
        "created": int(time.time()),
        "data": {"object": {"id": "ch_1", "object": "charge", "amount_refunded": 500}},
    }
    return stripe_signed(event, secret)


def due_units(service: Service) -> set[str]:
    with service.store.session() as session:
        return {r["unit"] for r in work.units(session) if r["due_tick"] > r["done_tick"]}


def test_an_event_is_kept_with_its_company_and_makes_only_that_company_due(service):
    listener = Listener(service, "127.0.0.1", 0)
    listener.start()
    try:
        body, headers = charge_refunded("evt_beta_1", SECRETS["eu_gateway"])
        answer = httpx.post(listener.address + "/webhooks/stripe/eu_gateway", content=body, headers=headers)
        body, headers = charge_refunded("evt_beta_2", SECRETS["us_gateway"])
        forged = httpx.post(listener.address + "/webhooks/stripe/eu_gateway", content=body, headers=headers)
    finally:
        listener.close()
    assert answer.status_code == 200
    assert forged.status_code == 401  # signed with the other company's secret
    assert due_units(service) == {"pull:eu_gateway:charges", "pull:eu_gateway:refunds", "reconcile:beta"}
    with service.store.engine.connect() as connection:
        kept = connection.execute(sa.text("SELECT event_id, connection, company FROM webhook_events")).all()
    assert [tuple(row) for row in kept] == [("evt_beta_1", "eu_gateway", "beta")]
