"""How fast a FULL pull of each provider runs against the sandbox, next to the rate limit's ceiling.

    python bench/pull.py [--size small|medium|large] [--latency-ms 50] [--limits documented|off]
                         [--providers stripe,xero,hubspot] [--seed N] [--stripe-key test|live]
                         [--xero-page-size 1000] [--hubspot-page-size 200] [--no-official]
                         [--in-process]

It serves the book (`large`: 110k invoices and 101k payments; `medium` for a quick run) from
the sandbox in a child process on loopback, with `--latency-ms` per request and the documented
limits, and reads every stream of each provider from scratch with the real adapter in this
process: `provider.read(stream, None)`, pages counted, nothing stored (this measures the pull,
not the store). Providers run one after another, so they never share the machine.

The child generates the book itself (this process never holds it), freezes it out of its
garbage collector, counts the requests it answers and tells them over a pipe. With its own
process the sandbox's filtering and encoding no longer take the GIL from the client under
test. `--in-process` serves the book from a thread of this process instead, as the bench did
until 2026-11-29 (figures from then compare with that option only).

Per stream it prints records, requests (counted at the sandbox, token grants and retried 429s
included), seconds, records/s, and the ceiling the documented rate limit allows for a full
page per request, with records/s as a percentage of it:

    Stripe   requests/s of the key (25 for sk_test_, 100 for sk_live_) x 100 per page
    Xero     60 per minute x pageSize (--xero-page-size; Xero allows up to 1000)
    HubSpot  search 4/s x pageSize (--hubspot-page-size; search allows up to 200)

A sliding-window limit lets the first window's worth of requests go at once, so a short
stream can beat the steady ceiling (over 100 %); the provider's total line also gives
"bound %": the least time the limit allows for the requests actually sent (bursts counted),
over the time taken. That says how well the adapter paces itself; % of ceiling says how much
of the limit became records (probes, partial pages and association reads use it too).

For Stripe the official `stripe` library's `auto_paging_iter()` (pip install stripe) then reads
the same lists, with the same parameters, from the same sandbox, in the same run, and the ratio
ours / official is printed. Its cursor chain is sequential: with 50 ms latency it cannot do
more than about 20 pages/s, whatever the limit. `--stripe-key live` uses a `sk_live_` key on
both sides (the sandbox then allows 100 requests/s), where that chain, not the limit, binds.

Everything stays on 127.0.0.1; each stream stops after `--stream-timeout` seconds or once it
has read more pages than the book could fill (a paging loop), and says so.
"""

from __future__ import annotations

import argparse
import gc
import math
import multiprocessing
import os
import platform
import sys
import threading
import time
import tomllib
import traceback
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from typing import Any, Protocol

from connector.demo import DEMO_CREDENTIALS, demo_config
from connector.providers.base import Provider
from connector.providers.hubspot.provider import HubSpotProvider
from connector.providers.stripe.provider import StripeProvider
from connector.providers.stripe.streams import STREAMS as STRIPE_STREAMS
from connector.providers.xero.provider import XeroProvider
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate

PROVIDERS = {"stripe": StripeProvider, "xero": XeroProvider, "hubspot": HubSpotProvider}
# The demo config's connection of each provider.
CONNECTIONS = {"stripe": "gateway", "xero": "ledger", "hubspot": "crm"}
# Each stream's list in the book and the id of its records.
BOOK_LISTS = {
    "stripe": {name: (name, "id") for name in STRIPE_STREAMS},
    "xero": {
        "contacts": ("Contacts", "ContactID"),
        "invoices": ("Invoices", "InvoiceID"),
        "credit_notes": ("CreditNotes", "CreditNoteID"),
        "payments": ("Payments", "PaymentID"),
    },
    "hubspot": {name: (name, "id") for name in ("companies", "contacts", "deals", "invoices")},
}
# The official library's resource for each Stripe stream (its list parameters are ours).
OFFICIAL_RESOURCES = {
    "customers": "Customer",
    "invoices": "Invoice",
    "charges": "Charge",
    "payment_intents": "PaymentIntent",
    "refunds": "Refund",
    "payouts": "Payout",
    "credit_notes": "CreditNote",
    "balance_transactions": "BalanceTransaction",
}
STRIPE_LIVE_KEY = "sk_live_sandbox_bench"  # a sandbox-only string, accepted on loopback only


class MemoryTokens:
    """A token store that keeps rotated OAuth tokens in memory (nothing is stored)."""

    def __init__(self) -> None:
        self.tokens: dict[str, dict[str, Any]] = {}

    def load(self, connection: str) -> dict[str, Any] | None:
        return self.tokens.get(connection)

    def save(self, connection: str, tokens: dict[str, Any]) -> None:
        self.tokens[connection] = dict(tokens)


class RequestCounter:
    """Counts every provider request the sandbox answers (wraps `Sandbox.dispatch`); it runs
    in the process that serves the sandbox."""

    def __init__(self, sandbox: Sandbox) -> None:
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()
        original = sandbox.dispatch

        def dispatch(request: Any, provider: str, *args: Any, **kwargs: Any) -> Any:
            outcome = original(request, provider, *args, **kwargs)
            status = outcome.response.status if outcome.response is not None else 0
            with self._lock:
                self.counts[(provider, "requests")] += 1
                if request.path.startswith("/oauth/"):
                    self.counts[(provider, "token")] += 1
                elif provider != "hubspot" or request.path.endswith("/search"):
                    # Drawn from the limit that bounds the pull (HubSpot: search's 4/s).
                    self.counts[(provider, "limited")] += 1
                if status == 429:
                    self.counts[(provider, "429")] += 1
                elif status >= 400 or status == 0:
                    self.counts[(provider, "errors")] += 1
            return outcome

        sandbox.dispatch = dispatch  # type: ignore[method-assign]

    def snapshot(self, provider: str) -> dict[str, int]:
        with self._lock:
            return {kind: n for (p, kind), n in self.counts.items() if p == provider}


# ------------------------------------------------------------------ where the sandbox runs


class Served(Protocol):
    """A running sandbox, as the bench sees it: where each provider is, and the counts of
    the requests it has answered so far (`RequestCounter.snapshot`)."""

    def url(self, provider: str) -> str: ...

    def snapshot(self, provider: str) -> dict[str, int]: ...

    def close(self) -> None: ...


@dataclass
class Loaded:
    """What the process serving the book says about it once it listens."""

    base_url: str
    book: dict[str, dict[str, int]]  # provider -> list -> records
    generated_s: float
    loaded_s: float
    pid: int


def load(seed: int, size: str, providers: list[str], latency_ms: float, limits: str) -> tuple[Sandbox, Loaded]:
    """Generate the book, load the providers' part into a sandbox and start it on loopback,
    then freeze what this process holds out of the garbage collector."""
    started = time.perf_counter()
    scenario = generate(seed, size)
    generated_s = time.perf_counter() - started
    credentials = {
        **DEMO_CREDENTIALS,
        "stripe": [*DEMO_CREDENTIALS["stripe"], STRIPE_LIVE_KEY],
    }
    started = time.perf_counter()
    sandbox = Sandbox(
        {**{p: scenario.data[p] for p in providers}, "credentials": credentials},
        latency_ms=latency_ms,
        limits=limits,  # type: ignore[arg-type]
    )
    # The sandbox holds its own copy: the generator's goes, and the counts stay.
    book = {p: {name: len(items or []) for name, items in scenario.data[p].items()} for p in providers}
    del scenario
    gc.collect()
    # The book lives as long as the process: keep the collector from walking its millions of
    # objects again and again (a large pull met full collections of 3-12 s, and requests
    # held that long reached the sandbox late and then together, into 429s).
    gc.freeze()
    base_url = sandbox.start()
    return sandbox, Loaded(base_url, book, generated_s, time.perf_counter() - started, os.getpid())


class InProcess:
    """The sandbox in a thread of this process (`--in-process`): it shares the GIL with the
    client under test."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.counter = RequestCounter(sandbox)

    def url(self, provider: str) -> str:
        return self.sandbox.url(provider)

    def snapshot(self, provider: str) -> dict[str, int]:
        return self.counter.snapshot(provider)

    def close(self) -> None:
        self.sandbox.stop()


class ChildProcess:
    """The sandbox in a child process of its own; the counts come over a pipe."""

    def __init__(self, seed: int, size: str, providers: list[str], latency_ms: float, limits: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child_end = context.Pipe()
        self._lock = threading.Lock()
        self.process = context.Process(
            target=_serve_child,
            args=(child_end, seed, size, providers, latency_ms, limits),
            name="pull-bench-sandbox",
            daemon=True,  # never outlives the bench
        )
        self.process.start()
        child_end.close()
        # Generating and loading a large book takes minutes: wait as long as the child lives.
        while not self._conn.poll(0.5):
            if not self.process.is_alive():
                raise RuntimeError(f"the sandbox process exited with code {self.process.exitcode} before it served")
        kind, value = self._conn.recv()
        if kind == "error":
            self.process.join(10)
            raise RuntimeError(f"the sandbox process failed:\n{value}")
        self.loaded: Loaded = value
        self.base_url = self.loaded.base_url

    def url(self, provider: str) -> str:
        return f"{self.base_url}/{provider}"

    def snapshot(self, provider: str) -> dict[str, int]:
        with self._lock:
            self._conn.send(("counts", provider))
            counts: dict[str, int] = self._conn.recv()
            return counts

    def close(self) -> None:
        try:
            self._conn.send(("stop", None))
        except OSError:
            pass  # already gone
        self.process.join(30)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        self._conn.close()


def _serve_child(conn: Connection, seed: int, size: str, providers: list[str], latency_ms: float, limits: str) -> None:
    """The child's life: load and serve the book, answer `("counts", provider)` until
    `("stop", None)` or until the bench's end of the pipe closes."""
    try:
        sandbox, loaded = load(seed, size, providers, latency_ms, limits)
        counter = RequestCounter(sandbox)
    except BaseException:
        conn.send(("error", traceback.format_exc()))
        conn.close()
        return
    conn.send(("ready", loaded))
    try:
        while True:
            try:
                kind, value = conn.recv()
            except EOFError:
                break
            if kind == "stop":
                break
            conn.send(counter.snapshot(value))
    finally:
        sandbox.stop()
        conn.close()
        # Skip tearing down the book object by object (seconds for a large one): nothing
        # is left to write.
        sys.stdout.flush()
        os._exit(0)


@dataclass
class Run:
    provider: str
    stream: str
    records: int = 0
    unique: int = 0
    expected: int = 0
    requests: int = 0
    limited: int = 0  # requests drawn from the limit that bounds the pull
    too_many: int = 0  # 429s
    errors: int = 0
    seconds: float = 0.0
    ceiling: float = 0.0  # records/s the limit allows with full pages
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def percent(self) -> float:
        return 100 * self.rate / self.ceiling if self.ceiling else 0.0


# ------------------------------------------------------------------ settings and ceilings


def settings_for(provider: str, sandbox: Served, args: argparse.Namespace) -> Any:
    """The provider's settings as `connector demo` writes them for this sandbox, plus the
    bench's page sizes and Stripe key."""
    table = dict(
        tomllib.loads(demo_config(sandbox))["connections"][CONNECTIONS[provider]]  # type: ignore[arg-type]
    )
    table.pop("provider")
    if provider == "stripe":
        table["api_key"] = stripe_key(args)
    elif provider == "xero":
        table["page_size"] = args.xero_page_size
    elif provider == "hubspot":
        table["page_size"] = args.hubspot_page_size
    return PROVIDERS[provider].settings_model.model_validate(table)


def stripe_key(args: argparse.Namespace) -> str:
    return STRIPE_LIVE_KEY if args.stripe_key == "live" else DEMO_CREDENTIALS["stripe"][0]


def limit_of(provider: str, settings: Any) -> tuple[int, float, int]:
    """(requests, per seconds, records per page) of the limit that bounds a full pull."""
    if provider == "stripe":
        return settings.account_requests_per_second(), 1.0, settings.page_size
    if provider == "xero":
        return settings.calls_per_minute, 60.0, settings.page_size
    return settings.search_requests_per_second, 1.0, settings.page_size


def ceiling_of(provider: str, settings: Any) -> float:
    requests, seconds, page = limit_of(provider, settings)
    return requests / seconds * page


def least_time(requests: int, limit: int, window: float) -> float:
    """The least time a sliding window of `limit` per `window` s allows for `requests` sent
    back to back from a full bucket: the last one may start after floor((n-1)/limit) windows."""
    return math.floor(max(0, requests - 1) / limit) * window if requests else 0.0


# ------------------------------------------------------------------ our adapters


def pull(
    provider_name: str,
    sandbox: Served,
    book: dict[str, int],
    args: argparse.Namespace,
) -> list[Run]:
    settings = settings_for(provider_name, sandbox, args)
    cls = PROVIDERS[provider_name]
    provider: Provider = cls(settings, connection=CONNECTIONS[provider_name], token_store=MemoryTokens())
    ceiling = ceiling_of(provider_name, settings)
    runs = []
    try:
        for stream in provider.streams:
            list_name, id_key = BOOK_LISTS[provider_name][stream]
            expected = book.get(list_name, 0)
            run = Run(provider_name, stream, expected=expected, ceiling=ceiling)
            # Bounded: a full page per request at the very least... or a paging loop.
            max_pages = expected + 1000
            seen: set[Any] = set()
            before = sandbox.snapshot(provider_name)
            started = time.perf_counter()
            for pages, page in enumerate(provider.read(stream, None), start=1):
                run.records += len(page.records)
                seen.update(r.get(id_key) for r in page.records)
                if pages > max_pages:
                    run.note = f"stopped after {pages} pages: paging loop?"
                    break
                if time.perf_counter() - started > args.stream_timeout:
                    run.note = f"stopped after {args.stream_timeout:.0f} s"
                    break
            run.seconds = time.perf_counter() - started
            _count(run, before, sandbox.snapshot(provider_name))
            run.unique = len(seen)
            if not run.note and (run.unique != expected or run.records != run.unique):
                run.note = f"book has {expected}, read {run.records} ({run.unique} distinct)"
            runs.append(run)
            print(_line(run), flush=True)
    finally:
        provider.close()
    return runs


def _count(run: Run, before: dict[str, int], after: dict[str, int]) -> None:
    run.requests = after.get("requests", 0) - before.get("requests", 0)
    run.limited = after.get("limited", 0) - before.get("limited", 0)
    run.too_many = after.get("429", 0) - before.get("429", 0)
    run.errors = after.get("errors", 0) - before.get("errors", 0)


# ------------------------------------------------------------------ the official library


def official_stripe(
    sandbox: Served,
    book: dict[str, int],
    args: argparse.Namespace,
) -> list[Run]:
    try:
        import stripe  # type: ignore[import-not-found]
    except ImportError:
        print("  (the official library is not installed: pip install stripe)")
        return []
    stripe.api_base = sandbox.url("stripe")
    stripe.api_key = stripe_key(args)
    stripe.max_network_retries = 5  # it honours 429 + Stripe-Should-Retry with backoff
    stripe.enable_telemetry = False
    settings = settings_for("stripe", sandbox, args)
    ceiling = ceiling_of("stripe", settings)
    runs = []
    for stream, resource in OFFICIAL_RESOURCES.items():
        definition = STRIPE_STREAMS[stream]
        expected = book.get(stream, 0)
        run = Run("stripe (official)", stream, expected=expected, ceiling=ceiling)
        params: dict[str, Any] = {"limit": settings.page_size}
        for key, value in definition.list_params.items():  # expand[] -> expand=[...]
            params[key.removesuffix("[]")] = [value] if key.endswith("[]") else value
        before = sandbox.snapshot("stripe")
        started = time.perf_counter()
        seen: set[str] = set()
        for obj in getattr(stripe, resource).list(**params).auto_paging_iter():
            run.records += 1
            seen.add(obj["id"])
            if run.records > expected + 100_000:
                run.note = "stopped: paging loop?"
                break
            if run.records % 100 == 0 and time.perf_counter() - started > args.stream_timeout:
                run.note = f"stopped after {args.stream_timeout:.0f} s"
                break
        run.seconds = time.perf_counter() - started
        _count(run, before, sandbox.snapshot("stripe"))
        run.unique = len(seen)
        if not run.note and (run.unique != expected or run.records != run.unique):
            run.note = f"book has {expected}, read {run.records} ({run.unique} distinct)"
        runs.append(run)
        print(_line(run), flush=True)
    return runs


# ------------------------------------------------------------------ printing


HEADER = (
    f"  {'provider':18} {'stream':21} {'records':>8} {'requests':>8} {'429s':>5} {'seconds':>8} "
    f"{'records/s':>10} {'ceiling/s':>10} {'% ceil':>7}  note"
)


def _line(run: Run) -> str:
    extra = f" {run.note}" if run.note else ""
    if run.errors:
        extra += f" ({run.errors} error answers)"
    return (
        f"  {run.provider:18} {run.stream:21} {run.records:8,} {run.requests:8,} {run.too_many:5} "
        f"{run.seconds:8.2f} {run.rate:10,.0f} {run.ceiling:10,.0f} {run.percent:6.0f}% {extra}"
    )


def total(provider: str, runs: list[Run], limit: tuple[int, float, int] | None) -> Run:
    whole = Run(provider, "TOTAL", ceiling=runs[0].ceiling if runs else 0.0)
    for run in runs:
        whole.records += run.records
        whole.unique += run.unique
        whole.expected += run.expected
        whole.requests += run.requests
        whole.limited += run.limited
        whole.too_many += run.too_many
        whole.errors += run.errors
        whole.seconds += run.seconds
    if limit is not None and whole.seconds:
        requests, window, _ = limit
        bound = least_time(whole.limited, requests, window)
        whole.note = (
            f"bound {100 * bound / whole.seconds:.0f}%: the limit allows its {whole.limited:,} "
            f"requests in {bound:.1f} s"
        )
    return whole


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", choices=("small", "medium", "large"), default="medium")
    parser.add_argument("--latency-ms", type=float, default=50)
    parser.add_argument("--limits", choices=("documented", "off"), default="documented")
    parser.add_argument("--providers", default="stripe,xero,hubspot")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--stripe-key",
        choices=("test", "live"),
        default="test",
        help="sk_test_ (25 requests/s) or sk_live_ (100/s) on both sides",
    )
    parser.add_argument("--xero-page-size", type=int, default=1000, help="pageSize (Xero: at most 1000)")
    parser.add_argument("--hubspot-page-size", type=int, default=200, help="search limit (at most 200)")
    parser.add_argument("--no-official", action="store_true", help="skip the official stripe library")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="serve the sandbox from a thread of this process (as the bench did until 2026-11-29)",
    )
    parser.add_argument(
        "--stream-timeout",
        type=float,
        default=3600,
        help="stop a stream after this long",
    )
    args = parser.parse_args(argv)
    chosen = [p.strip() for p in args.providers.split(",") if p.strip()]
    unknown = [p for p in chosen if p not in PROVIDERS]
    if unknown:
        parser.error(f"unknown provider {unknown[0]!r} (known: {', '.join(PROVIDERS)})")

    print(
        f"pull bench {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, Python {platform.python_version()}, "
        f"{_cores()} cores; {' '.join(sys.argv)}"
    )
    sandbox: Served
    if args.in_process:
        served, loaded = load(args.seed, args.size, chosen, args.latency_ms, args.limits)
        sandbox, where = InProcess(served), "in this process"
    else:
        sandbox = child = ChildProcess(args.seed, args.size, chosen, args.latency_ms, args.limits)
        loaded, where = child.loaded, f"in a child process (pid {child.loaded.pid})"
    print(f"book: seed {args.seed}, {args.size}, generated in {loaded.generated_s:.1f} s")
    print(
        f"sandbox {where}, loaded in {loaded.loaded_s:.1f} s; latency {args.latency_ms:g} ms, "
        f"limits {args.limits}, Stripe key {args.stripe_key}"
    )
    results: dict[str, list[Run]] = {}
    try:
        print(HEADER)
        for name in chosen:
            settings = settings_for(name, sandbox, args)
            limit = limit_of(name, settings)
            runs = pull(name, sandbox, loaded.book[name], args)
            results[name] = runs
            print(_line(total(name, runs, limit)), flush=True)
            if name == "stripe" and not args.no_official:
                # Let the key's rate window empty: the official run starts as ours did.
                time.sleep(1.5)
                official = official_stripe(sandbox, loaded.book[name], args)
                if official:
                    results["stripe (official)"] = official
                    print(_line(total("stripe (official)", official, limit)), flush=True)
    finally:
        sandbox.close()
    if "stripe" in results and "stripe (official)" in results:
        print("  ours / official (records/s):")
        by_stream = {run.stream: run for run in results["stripe (official)"]}
        for run in results["stripe"]:
            theirs = by_stream.get(run.stream)
            if theirs is not None and theirs.rate and run.records:
                print(f"    {run.stream:21} {run.rate / theirs.rate:5.2f}x")
        ours, theirs = (
            total("", results["stripe"], None),
            total("", results["stripe (official)"], None),
        )
        if theirs.rate:
            print(f"    {'TOTAL':21} {ours.rate / theirs.rate:5.2f}x")
    return 0


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 0


if __name__ == "__main__":
    raise SystemExit(main())
