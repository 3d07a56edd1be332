"""The conformance kit itself: each deliberately broken variant of a working provider (the
QuickBooks plugin, against the sandbox's QuickBooks face) fails the check meant to catch it,
with that check's message, while the unbroken provider passes the same check. And the kit's
fixtures-directory mode (`fixtures=` with kit.toml) passes a working provider on answers
recorded from it.

The generated test methods are called directly: a check passes (returns), fails
(AssertionError or pytest.fail) or skips (pytest.skip), as under pytest.
"""

from __future__ import annotations

import copy
import json
import logging
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
import pytest
from pydantic import SecretStr

from connector.http import OAuthTokenManager
from connector.providers.base import Page
from connector.sandbox.generator import generate
from connector.sandbox.quickbooks_api import quickbooks_book
from connector.testing import ActionCase, MoneyCase, RecordCase, provider_test_class, sandbox_api

pytest.importorskip("connector_quickbooks")  # the plugin: pip install -e plugins/quickbooks
from connector_quickbooks import QuickBooksProvider, QuickBooksSettings, incremental  # noqa: E402
from connector_quickbooks import provider as qbo_provider  # noqa: E402

BASE = "http://sandbox.kit/quickbooks"
PAGE_SIZE = 2
# The moment the answers are recorded at: the provider's and the sandbox's clock.
RECORDED_AT = datetime(2026, 3, 2, 12, 0, tzinfo=UTC).timestamp()


def _book() -> dict[str, Any]:
    """A small company (a few pages per stream), with update times shared by three records
    at a time so that ties straddle page boundaries of 2."""
    book = quickbooks_book(generate(3, "small", today=date(2026, 3, 2)).data["xero"])
    open_usd = next(
        i
        for i in book["Invoice"]
        if i["Balance"] == i["TotalAmt"] and i["TotalAmt"] > 0 and i["CurrencyRef"]["value"] == "USD"
    )
    for entity, keep in (("Customer", 7), ("Invoice", 8), ("Payment", 7), ("CreditMemo", 2)):
        book[entity] = sorted(book[entity], key=lambda r: datetime.fromisoformat(_stamp(r)))[-keep:]
    book["Invoice"] += [open_usd] if open_usd not in book["Invoice"] else []
    memos = book["CreditMemo"]
    for n in range(len(memos), 5):
        extra = copy.deepcopy(memos[n % 2])
        moment = (datetime.fromisoformat(_stamp(memos[0])) + timedelta(days=n)).isoformat()
        extra.update(
            Id=str(9000 + n), DocNumber=f"CN-KIT-{n}", MetaData={"CreateTime": moment, "LastUpdatedTime": moment}
        )
        memos.append(extra)
    for entity in ("Customer", "Invoice", "Payment", "CreditMemo"):
        ordered = sorted(book[entity], key=lambda r: datetime.fromisoformat(_stamp(r)))
        for i, raw in enumerate(ordered):
            raw["MetaData"] = {**raw["MetaData"], "LastUpdatedTime": _stamp(ordered[i - i % 3])}
    return book


def _stamp(raw: dict[str, Any]) -> str:
    return raw["MetaData"]["LastUpdatedTime"]


BOOK = _book()
OPEN = next(
    i
    for i in reversed(BOOK["Invoice"])
    if i["Balance"] == i["TotalAmt"] and i["TotalAmt"] > 0 and i["CurrencyRef"]["value"] == "USD"
)
SETTINGS = QuickBooksSettings(
    base_url=BASE,
    token_url=f"{BASE}/oauth/token",
    realm_id="4620816365257778210",
    client_id="kit-client",
    client_secret=SecretStr("kit-client-secret"),
    refresh_token=SecretStr("kit-refresh-token"),
    page_size=PAGE_SIZE,
    home_currency="USD",
)


def invoice(currency: str, amount: str, voided: bool = False) -> dict[str, Any]:
    raw = copy.deepcopy(OPEN)
    raw.update(
        CurrencyRef={"value": currency}, Line=[], TxnTaxDetail={"TotalTax": "0"}, TotalAmt=amount, Balance=amount
    )
    if voided:
        raw.update(TotalAmt="0", Balance="0", PrivateNote="Voided")
    return raw


MONEY = [
    MoneyCase("invoices", invoice("JPY", "15000"), "total", "15000", "JPY"),
    MoneyCase("invoices", invoice("KWD", "12.345"), "total", "12.345", "KWD"),
]
VOIDS = [RecordCase("invoices", invoice("USD", "10.00", voided=True), "void")]
ACTIONS = [
    ActionCase(
        "record_payment",
        {"object_type": "invoice", "remote_id": OPEN["Id"]},
        {"amount": "10.00", "currency": "USD", "date": "2026-03-01", "reference": "kit"},
    ),
    ActionCase("send_invoice", {"object_type": "invoice", "remote_id": OPEN["Id"]}, {}),
]


def kit_class(provider: type[QuickBooksProvider], **options: Any) -> type:
    return provider_test_class(
        provider,
        settings=SETTINGS,
        router=sandbox_api({"quickbooks": BOOK}),
        money=MONEY,
        voids=VOIDS,
        actions=ACTIONS,
        **options,
    )


def outcome(test_class: type, check: str, **params: Any) -> tuple[str, str]:
    """Run one generated check: ("passed" | "failed" | "skipped", its message)."""
    try:
        getattr(test_class(), check)(**params)
    except pytest.skip.Exception as exc:
        return "skipped", str(exc)
    except (AssertionError, pytest.fail.Exception) as exc:
        return "failed", str(exc)
    return "passed", ""


# -- the broken variants --------------------------------------------------------------------


class NoLoopDetection(QuickBooksProvider):
    """Pages by STARTPOSITION until a short page and never looks at what came back."""

    def _query_pages(self, stream: str, entity: str, since: datetime | None) -> Iterator[Any]:
        start = 1
        while True:
            body = self._get(
                "/query", {"query": f"SELECT * FROM {entity} STARTPOSITION {start} MAXRESULTS {PAGE_SIZE}"}
            )
            raws = (body.get("QueryResponse") or {}).get(entity) or []
            yield Page(stream, raws, cursor=None)
            if len(raws) < PAGE_SIZE:
                return
            start += PAGE_SIZE


class RefreshesTwice(OAuthTokenManager):
    """Answers a 401 with two refreshes (the second spends the token the first rotated)."""

    def auth_flow(self, request: httpx.Request) -> Any:
        token = self.access_token()
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:
            token = self.refresh(stale=self.refresh(stale=token))
            request.headers["Authorization"] = f"Bearer {token}"
            yield request


class TwoRefreshesOnA401(QuickBooksProvider):
    def __init__(self, settings: Any, **kwargs: Any) -> None:
        # the name the provider module looks up when it builds its token manager
        with mock.patch.object(qbo_provider, "OAuthTokenManager", RefreshesTwice):
            super().__init__(settings, **kwargs)


class ForgetsTheTokenStore(QuickBooksProvider):
    """Rotated refresh tokens live only in memory: a restart spends a dead one."""

    def __init__(self, settings: Any, *, token_store: Any = None, **kwargs: Any) -> None:
        super().__init__(settings, token_store=None, **kwargs)


class RandomIdempotencyKey(QuickBooksProvider):
    def _post(self, path: str, *, key: str, json: Any = None) -> Any:
        return super()._post(path, key=uuid.uuid4().hex, json=json)


class SecretInRepr(QuickBooksProvider):
    def __repr__(self) -> str:
        return f"<QuickBooks {self.settings.client_id}:{self.settings.client_secret.get_secret_value()}>"


class SecretInLogs(QuickBooksProvider):
    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        logging.getLogger("acme.debug").debug("GET %s with %s", path, self.settings.client_secret.get_secret_value())
        return super()._get(path, params)


class PageYieldedTwice(QuickBooksProvider):
    def _query_pages(self, stream: str, entity: str, since: datetime | None) -> Iterator[Any]:
        for n, page in enumerate(super()._query_pages(stream, entity, since)):
            yield page
            if n == 0:
                yield page


class UndeclaredStream(QuickBooksProvider):
    def read_estimates(self, cursor: str | None) -> Iterator[Any]:
        return iter(())


class GapAtTheCursor(QuickBooksProvider):
    """Resumes one second after the saved cursor: records changed at its moment are lost."""

    def _read(self, stream: str, cursor: str | None) -> Iterator[Any]:
        since = incremental.load_cursor(cursor)
        if since is not None:
            cursor = incremental.dump_cursor(since + timedelta(seconds=1))
        return super()._read(stream, cursor)


FAULTS = [
    pytest.param(
        NoLoopDetection,
        "test_a_repeated_cursor_is_caught",
        {"stream": "invoices"},
        "was answered the same page again and again and did not raise PaginationLoopError",
        id="no-loop-detection",
    ),
    pytest.param(
        TwoRefreshesOnA401,
        "test_a_401_triggers_one_token_refresh",
        {},
        "a 401 should cost exactly one token refresh, it cost 2",
        id="two-refreshes-on-a-401",
    ),
    pytest.param(
        ForgetsTheTokenStore,
        "test_a_rotated_refresh_token_is_saved_before_it_is_used",
        {},
        "the rotated refresh token was never saved through the TokenStore",
        id="token-store-not-saved",
    ),
    pytest.param(
        RandomIdempotencyKey,
        "test_each_action_sent_twice_has_one_effect",
        {"action": "record_payment"},
        "does not carry the action's idempotency key",
        id="random-idempotency-key",
    ),
    pytest.param(
        SecretInRepr,
        "test_secrets_are_redacted_in_repr_and_logs",
        {},
        "a secret setting appears in repr or a log line: '<QuickBooks kit-client:",
        id="secret-in-repr",
    ),
    pytest.param(
        SecretInLogs,
        "test_secrets_are_redacted_in_repr_and_logs",
        {},
        "a secret setting appears in repr or a log line: 'GET /",
        id="secret-in-logs",
    ),
    pytest.param(
        PageYieldedTwice,
        "test_the_cursor_advances_and_resuming_skips_nothing",
        {"stream": "invoices"},
        "one read of invoices yielded the same record twice",
        id="page-yielded-twice",
    ),
    pytest.param(
        UndeclaredStream,
        "test_declared_capabilities_match_implemented_methods",
        {},
        "UndeclaredStream implements read_estimates but does not declare the stream or action",
        id="undeclared-read",
    ),
    pytest.param(
        GapAtTheCursor,
        "test_records_at_the_cursors_moment_survive_a_resume",
        {"stream": "invoices"},
        "changed at the cursor's moment",
        id="one-second-gap-at-the-cursor",
    ),
]


@pytest.mark.parametrize(("variant", "check", "params", "message"), FAULTS)
def test_a_broken_provider_fails_the_check_meant_for_it(variant, check, params, message):
    state, text = outcome(kit_class(variant, max_requests=60), check, **params)
    assert state == "failed", f"{variant.__name__} was not caught by {check}: {state} {text}"
    assert message in text, text


def test_a_secret_in_a_log_line_is_caught_under_the_connectors_own_logging():
    """With `connector`'s redacting stderr handler installed (as any CLI run in the same
    process leaves it), the leak must still be seen: that handler masks records in place."""
    from connector.logs import configure_logging

    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    configure_logging(verbosity=2)
    try:
        state, text = outcome(kit_class(SecretInLogs, max_requests=60), "test_secrets_are_redacted_in_repr_and_logs")
    finally:
        root.handlers[:] = before
        root.setLevel(level)
    assert state == "failed" and "a secret setting appears in repr or a log line: 'GET /" in text, text


def _check_and_params(values: Sequence[object]) -> tuple[str, tuple[tuple[str, Any], ...]]:
    """A fault's check and that check's parameters: the second and third of its values."""
    check, params = values[1], values[2]
    assert isinstance(check, str) and isinstance(params, dict)
    return check, tuple(params.items())


@pytest.mark.parametrize(("check", "params"), sorted({_check_and_params(p.values) for p in FAULTS}))
def test_the_working_provider_passes_the_same_checks(check, params):
    assert outcome(kit_class(QuickBooksProvider), check, **dict(params)) == ("passed", "")


def test_a_gap_at_the_cursor_also_fails_the_resume_check():
    state, text = outcome(
        kit_class(GapAtTheCursor), "test_the_cursor_advances_and_resuming_skips_nothing", stream="payments"
    )
    assert state == "failed" and "skipped" in text and "must be read again, not lost" in text, text


def test_a_stream_of_one_page_is_skipped_with_the_reason_not_passed():
    one_page = SETTINGS.model_copy(update={"page_size": 50})
    test_class = provider_test_class(QuickBooksProvider, settings=one_page, router=sandbox_api({"quickbooks": BOOK}))
    for check in (
        "test_the_cursor_advances_and_resuming_skips_nothing",
        "test_records_at_the_cursors_moment_survive_a_resume",
        "test_a_repeated_cursor_is_caught",
    ):
        state, text = outcome(test_class, check, stream="invoices")
        assert state == "skipped", (check, state, text)
        assert "page_size" in text or "page size" in text, text


def test_no_record_at_the_cursors_moment_is_a_skip_that_says_how_to_record_one():
    distinct = copy.deepcopy(BOOK)
    for n, raw in enumerate(sorted(distinct["Invoice"], key=lambda r: r["Id"])):
        moment = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=n)
        raw["MetaData"] = {**raw["MetaData"], "LastUpdatedTime": moment.isoformat()}
    test_class = provider_test_class(
        QuickBooksProvider, settings=SETTINGS, router=sandbox_api({"quickbooks": distinct})
    )
    state, text = outcome(test_class, "test_records_at_the_cursors_moment_survive_a_resume", stream="invoices")
    assert state == "skipped", text
    assert "two records changed in the same second fall on either side of a page boundary" in text
    # ... while the same data cannot hide the gap from the resume check once a tie is there
    assert outcome(test_class, "test_the_cursor_advances_and_resuming_skips_nothing", stream="invoices")[0] == "passed"


# -- the fixtures-directory mode ------------------------------------------------------------


class Recorder:
    """Wraps the API: every exchange that reaches it, in order (the kit's own injected answers
    and its token endpoint never do)."""

    exchanges: list[tuple[httpx.Request, httpx.Response]] = []

    def __init__(self, api: Any) -> None:
        self.api = api

    def __call__(self, request: httpx.Request) -> httpx.Response:
        response = self.api(request)
        response.read()
        self.exchanges.append((request, response))
        return response


def _checks(test_class: type) -> list[tuple[str, dict[str, Any]]]:
    """Every generated check with its parameters, as pytest would collect them."""
    found: list[tuple[str, dict[str, Any]]] = []
    for name in sorted(n for n in dir(test_class) if n.startswith("test_")):
        marks = [m for m in getattr(getattr(test_class, name), "pytestmark", []) if m.name == "parametrize"]
        if not marks:
            found.append((name, {}))
            continue
        argument, values = marks[0].args[0], marks[0].args[1]
        found += [(name, {argument: value}) for value in values]
    return found


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))


def record_fixtures(directory: Path) -> int:
    """Run every check against the sandbox with a pinned clock, and write what the provider
    asked and was answered as a fixtures directory: kit.toml with one [[routes]] per distinct
    request (all its query parameters), the bodies as JSON files, and the cases."""
    Recorder.exchanges = []
    clock = {"clock": lambda: RECORDED_AT}
    recording = provider_test_class(
        QuickBooksProvider,
        settings=SETTINGS,
        token_endpoint="kit",
        provider_kwargs=clock,
        router=lambda: Recorder(sandbox_api({"quickbooks": BOOK}, clock=lambda: RECORDED_AT)()),
        money=MONEY,
        voids=VOIDS,
        actions=ACTIONS,
    )
    for check, params in _checks(recording):
        assert outcome(recording, check, **params)[0] in ("passed", "skipped"), check
    lines: list[str] = []
    seen: set[tuple[Any, ...]] = set()
    (directory / "answers").mkdir(parents=True)
    for request, response in Recorder.exchanges:
        path = request.url.path.removeprefix("/quickbooks")
        params = dict(request.url.params)
        key = (request.method, path, tuple(sorted(params.items())))
        if key in seen:
            continue
        seen.add(key)
        name = f"answers/{len(seen):04d}.json"
        (directory / name).write_bytes(response.content)
        lines += [
            "[[routes]]",
            f"method = {_toml(request.method)}",
            f"path = {_toml(path)}",
            f"params = {_toml(params)}",
            f"status = {response.status_code}",
            f"response = {_toml(name)}",
            "",
        ]
    (directory / "cases").mkdir()
    for n, case in enumerate(MONEY):
        (directory / f"cases/money{n}.json").write_text(json.dumps(case.record, default=str))
        lines += [
            "[[money]]",
            f'stream = "{case.stream}"',
            f'record = "cases/money{n}.json"',
            f'field = "{case.field}"',
            f'amount = "{case.amount}"',
            f'currency = "{case.currency}"',
            "",
        ]
    for n, void in enumerate(VOIDS):
        (directory / f"cases/void{n}.json").write_text(json.dumps(void.record, default=str))
        lines += [
            "[[void]]",
            f'stream = "{void.stream}"',
            f'record = "cases/void{n}.json"',
            f'expect = "{void.expect}"',
            "",
        ]
    for action in ACTIONS:
        lines += [
            f"[actions.{action.kind}]",
            f"target = {_toml(action.target)}",
            f"payload = {_toml(action.payload)}",
            "",
        ]
    lines += ["[kit]", 'token_endpoint = "kit"', "max_requests = 300", ""]
    (directory / "kit.toml").write_text("\n".join(lines), encoding="utf-8")
    return len(seen)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("qbo-fixtures")
    assert record_fixtures(directory) > 20
    return directory


def test_recorded_fixtures_pass_every_check_with_the_clock_pinned(recorded):
    replay = provider_test_class(
        QuickBooksProvider, settings=SETTINGS, fixtures=recorded, provider_kwargs={"clock": lambda: RECORDED_AT}
    )
    assert len(replay.kit.config.routes) > 20 and replay.kit.config.money and replay.kit.config.actions
    results = {(check, tuple(params.values())): outcome(replay, check, **params) for check, params in _checks(replay)}
    failed = {k: v for k, v in results.items() if v[0] != "passed"}
    assert not failed
    assert ("test_records_at_the_cursors_moment_survive_a_resume", ("invoices",)) in results


def test_recorded_fixtures_without_the_pinned_clock_miss_the_cdc_routes(recorded):
    """QuickBooks asks CDC for deletes since max(cursor - overlap, now - 30 days): on the wall
    clock that request changes from run to run, so no recorded route answers it."""
    replay = provider_test_class(QuickBooksProvider, settings=SETTINGS, fixtures=recorded)
    state, text = outcome(replay, "test_the_cursor_advances_and_resuming_skips_nothing", stream="invoices")
    assert state == "failed" and "no recorded answer for GET /v3/company/" in text and "/cdc?" in text, text


def test_a_request_with_no_recorded_answer_names_it(tmp_path):
    (tmp_path / "kit.toml").write_text('[kit]\ntoken_endpoint = "kit"\n')
    replay = provider_test_class(QuickBooksProvider, settings=SETTINGS, fixtures=tmp_path)
    state, text = outcome(replay, "test_pagination_terminates", stream="customers")
    assert state == "failed" and "no recorded answer for GET /v3/company/4620816365257778210/query?" in text, text
