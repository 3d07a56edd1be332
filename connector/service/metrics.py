"""The service's Prometheus metrics (prometheus-client writes the exposition format).

A series about a book or a connection carries its `company` label (`default` where the config
names none): runs, records, actions, provider errors, rate-limit deferrals, last success,
allocations, open proposals, the outbox by state and the writes that wait on their connection
(`connector_connection_deferred`: a refused credential, a spent limit). The HTTP error answers and the webhooks
are counted by provider, as the request showed them.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

OUTBOX_STATES = ("planned", "in_flight", "done", "failed", "cancelled")
# Why a connection's writes wait on the connection itself (`outbox.waiting_by_connection`).
DEFERRAL_REASONS = ("credential", "rate_limit")

# A webhook's outcome: "unknown" is a path naming no configured provider or connection.
WebhookOutcome = Literal["accepted", "rejected", "unknown"]
UNKNOWN = "unknown"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "connector_runs", "Work units run, by company, kind and outcome", ["company", "kind", "outcome"], registry=r
        )
        self.records = Counter(
            "connector_records_pulled", "Records pulled and stored", ["company", "connection", "stream"], registry=r
        )
        self.skipped = Counter(
            "connector_records_skipped",
            "Records the mapping could not read",
            ["company", "connection", "stream"],
            registry=r,
        )
        self.allocations = Counter(
            "connector_allocations", "Allocations applied by reconciliation", ["company"], registry=r
        )
        self.proposals = Gauge("connector_open_proposals", "Proposals waiting for finance", ["company"], registry=r)
        self.actions = Counter(
            "connector_actions",
            "Outbox actions sent by this worker, by outcome",
            ["company", "connection", "outcome"],
            registry=r,
        )
        self.outbox = Gauge(
            "connector_outbox_actions",
            "Outbox actions by company and state (the shared outbox, counted each tick)",
            ["company", "state"],
            registry=r,
        )
        self.provider_errors = Counter(
            "connector_provider_errors",
            "Streams (source=stream) or actions (source=action) failed by a provider error",
            ["company", "connection", "source"],
            registry=r,
        )
        self.deferred = Counter(
            "connector_rate_limited",
            "Streams deferred by a provider's rate limit",
            ["company", "connection"],
            registry=r,
        )
        self.connection_deferred = Gauge(
            "connector_connection_deferred",
            "Writes of a connection waiting on the connection (reason=credential: refused, waiting for a new one; "
            "reason=rate_limit: a spent limit), in the shared outbox, counted each tick",
            ["company", "connection", "reason"],
            registry=r,
        )
        self.error_answers = Counter(
            "connector_provider_error_responses",
            "Error answers from a provider, retried ones included (status 429 = rate limited)",
            ["provider", "status"],
            registry=r,
        )
        self.webhooks = Counter(
            "connector_webhooks", "Webhook requests by provider and outcome", ["provider", "outcome"], registry=r
        )
        self.last_success = Gauge(
            "connector_last_success_timestamp_seconds",
            "Last successful pull per connection",
            ["company", "connection"],
            registry=r,
        )

    def add_companies(self, companies: Iterable[str]) -> None:
        """Show each company's outbox states and open proposals from the start (at 0 until
        counted), so that a dashboard sees the series before the first tick ends."""
        for company in companies:
            self.proposals.labels(company).set(0)
            for state in OUTBOX_STATES:
                self.outbox.labels(company, state).set(0)

    def set_waiting(self, company: str, connections: Iterable[str], waiting: Mapping[tuple[str, str], int]) -> None:
        """The company's writes that wait on their connection, by (connection, reason); every
        connection of the company is shown, at 0 when none of its writes waits."""
        for connection in connections:
            for reason in DEFERRAL_REASONS:
                self.connection_deferred.labels(company, connection, reason).set(waiting.get((connection, reason), 0))

    def count_response(self, provider: str, status: int) -> None:
        """A `connector.http.observe_responses` observer: every 4xx/5xx answer, 429s included."""
        if status >= 400:
            self.error_answers.labels(provider, str(status)).inc()

    def count_webhook(self, provider: str, outcome: WebhookOutcome, providers: Collection[str]) -> None:
        """One webhook request. The provider comes from the request's path: one outside
        `providers` (the configured ones) is counted as "unknown", or every random path would
        add a series and grow the exposition without bound."""
        self.webhooks.labels(provider if provider in providers else UNKNOWN, outcome).inc()

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
