"""`provider_test_class()`: the standard tests of a provider, as a class pytest collects.

Each check runs the real provider class against the API the partner supplied (through a
`KitServer`, under respx), maps what it read through the provider's own mapping file, and
fails with a message that says what to fix. A check that cannot apply to this provider
(OAuth checks for an API-key provider) is skipped with the reason; a provider method that
raises NotImplementedError fails its checks with "not implemented".
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import re
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx
import pytest
import respx
from pydantic import BaseModel, SecretStr, ValidationError

from connector.errors import PaginationLoopError
from connector.http import ProviderHttp, RetryPolicy
from connector.mappings.mapper import Mapper, get_path, load_mapping
from connector.mappings.spec import as_field
from connector.model import Action, ActionKind, Ref
from connector.money import Money, currency_exponent
from connector.providers.base import ActionResult, Page, Provider, ProviderSettings, secret_fields
from connector.providers.registry import contract_problems
from connector.testing.config import (
    ActionCase,
    KitConfig,
    KitSetupError,
    MoneyCase,
    RecordCase,
    load_manifest,
)
from connector.testing.server import (
    Api,
    KitAbort,
    KitServer,
    RecordedApi,
    json_response,
)

CONNECTION = "kit"
_T = TypeVar("_T")
# What a partner may pass as `router`: the API itself, a factory of one, or a respx.Router.
Router = Api | Callable[[], Api] | respx.Router
# Page boundaries the moment check resumes from, at most (spread over the read).
_MAX_PROOFS = 6
_SECRETISH = re.compile(r"(secret|password|api_key|token|private_key)$")


@dataclasses.dataclass
class Run:
    """One check's world: the server, the provider on it, and what its retries slept."""

    server: KitServer
    provider: Provider
    sleeps: list[float]


@dataclasses.dataclass
class ReadResult:
    pages: list[Page]
    error: BaseException | None = None

    @property
    def records(self) -> list[dict[str, Any]]:
        return [r for p in self.pages for r in p.records]


class ProviderKit:
    """Everything the generated tests share: how to build a run, read, map."""

    def __init__(
        self,
        provider_class: type[Provider],
        settings: ProviderSettings,
        *,
        fixtures: str | Path | None,
        router: Router | None,
        config: KitConfig,
        provider_kwargs: dict[str, Any],
    ) -> None:
        self.cls = provider_class
        self.settings = settings
        self.fixtures = fixtures
        self.router = router
        self.config = config
        self.provider_kwargs = provider_kwargs
        self._explicit: set[str] = set()  # options the partner set by hand

    # -- building --------------------------------------------------------------------------

    @property
    def oauth(self) -> bool:
        return bool(_secret(getattr(self.settings, "refresh_token", None)))

    def _api(self) -> Api:
        router = self.router
        if router is None:
            # No routes: every request fails with "no recorded answer for ...".
            base_path = httpx.URL(self.settings.base_url).path
            return RecordedApi(self.config.routes, base_path=base_path)
        if isinstance(router, respx.Router):
            return router.handler
        if not _takes_arguments(router):
            factory = cast(Callable[[], Api], router)  # no required argument: a factory
            return factory()  # a fresh fake for each check
        return cast(Api, router)

    @contextlib.contextmanager
    def run(self) -> Iterator[Run]:
        config = self.config
        if self.router is not None and self.oauth and "token_endpoint" not in self._explicit:
            config = dataclasses.replace(config, token_endpoint="api")
        server = KitServer(self._api(), config, token_url=getattr(self.settings, "token_url", None))
        sleeps: list[float] = []
        with respx.mock(assert_all_called=False, assert_all_mocked=True) as mock:
            mock.route().mock(side_effect=server)
            provider = self._build(server, sleeps)
            try:
                yield Run(server, provider, sleeps)
            finally:
                with contextlib.suppress(Exception):
                    provider.close()

    def _build(self, server: KitServer, sleeps: list[float]) -> Provider:
        retry = RetryPolicy(sleep=sleeps.append, jitter=0.0, backoff_initial=0.01, backoff_max=0.01)
        accepted = inspect.signature(self.cls.__init__).parameters
        kwargs: dict[str, Any] = {"connection": CONNECTION, "token_store": server.store}
        if "retry" in accepted:
            kwargs["retry"] = retry
        if "rate_limiter" in accepted:
            kwargs["rate_limiter"] = None
        kwargs.update(self.provider_kwargs)
        provider = _not_implemented(lambda: self.cls(self.settings, **kwargs), f"{self.cls.__name__}.__init__")
        # A provider that keeps its ProviderHttp in an attribute gets the kit's retry sleep
        # and no rate limiter, so that no check waits for real.
        for value in vars(provider).values():
            if isinstance(value, ProviderHttp):
                value.retry = dataclasses.replace(value.retry, sleep=sleeps.append, jitter=0.0)
                value.rate_limiter = None
        return provider

    def mapper(self) -> Mapper:
        if not self.cls.mapping_file:
            pytest.fail(f'{self.cls.__name__} declares no mapping_file ("package:file.toml")')
        return load_mapping(self.cls.mapping_file, connection=CONNECTION, overrides=self.settings.mapping or None)

    # -- reading ---------------------------------------------------------------------------

    def read(
        self,
        run: Run,
        stream: str,
        cursor: str | None = None,
        *,
        catch: tuple[type[BaseException], ...] = (),
        abort_ok: bool = False,
    ) -> ReadResult:
        """All pages of one read. `catch`: errors returned in the result instead of raised;
        `abort_ok`: a `KitAbort` (too many requests, no recorded answer) is returned too,
        for the check to explain, instead of failing the check at once."""
        pages: list[Page] = []
        try:
            pages.extend(run.provider.read(stream, cursor))
        except NotImplementedError as exc:
            pytest.fail(f"not implemented: {self.cls.__name__}.read_{stream}(): {exc}")
        except KitAbort as exc:
            if abort_ok:
                return ReadResult(pages, exc)
            pytest.fail(f"{stream}: {exc}")
        except catch as exc:
            return ReadResult(pages, exc)
        return ReadResult(pages)

    def remote_id(self, mapper: Mapper, stream: str, raw: dict[str, Any]) -> str:
        spec = as_field(mapper.stream(stream).id)
        value = get_path(raw, spec.path) if spec.path else None
        return str(value) if isinstance(value, (str, int)) else repr(raw)[:60]

    def updated(self, mapper: Mapper, stream: str, raw: dict[str, Any]) -> Any:
        try:
            return mapper.map_one(stream, raw).ref.remote_updated_at
        except Exception:  # noqa: BLE001 - a record that does not map is the mapping check's business
            return None


def _takes_arguments(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    return any(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


def _secret(value: Any) -> str | None:
    if isinstance(value, SecretStr):
        return value.get_secret_value() or None
    return value or None


def _not_implemented(call: Callable[[], _T], what: str) -> _T:
    try:
        return call()
    except NotImplementedError as exc:
        pytest.fail(f"not implemented: {what}: {exc}")


def _secrets(settings: BaseModel) -> list[str]:
    return [s for name in secret_fields(type(settings)) if (s := _secret(getattr(settings, name))) and len(s) >= 4]


def _boundaries(pages: list[Page]) -> list[int]:
    """Indexes of the pages whose cursor has records after it in the same read: the places a
    resumed read can be checked against."""
    return [k for k, page in enumerate(pages) if page.cursor and any(p.records for p in pages[k + 1 :])]


def _moment(value: Any) -> str:
    return value.isoformat() if hasattr(value, "isoformat") else str(value)


def _at_boundary(moment: Any, newest: Any, overlap: timedelta) -> bool:
    return moment is None or newest is None or moment >= newest - overlap


def _dig(record: BaseModel, path: str) -> Any:
    value: Any = record
    for step in path.split("."):
        value = value[int(step)] if step.isdigit() else getattr(value, step)
    return value


def _requests_text(request: httpx.Request) -> str:
    return " ".join([str(request.url), *request.headers.values(), request.content.decode("utf-8", "replace")])


# -- the generated tests ----------------------------------------------------------------------


def _read_all(kit: ProviderKit, stream: str) -> ReadResult:
    """One full read of `stream`; a fixture set without its records fails the check."""
    with kit.run() as run:
        full = kit.read(run, stream)
    if not full.records:
        pytest.fail(f"the fixtures hold no {stream} record: record at least two pages of them")
    return full


class _Checks:
    kit: ProviderKit

    # Settings and capabilities ---------------------------------------------------------------

    def test_settings_validate_and_refuse_bad_input(self) -> None:
        kit = self.kit
        model = kit.cls.settings_model
        assert isinstance(kit.settings, model), (
            f"settings must be a {model.__name__}, not {type(kit.settings).__name__}"
        )
        values = {k: getattr(kit.settings, k) for k in model.model_fields}
        plain = {k: (v.get_secret_value() if isinstance(v, SecretStr) else v) for k, v in values.items()}
        assert model.model_validate(plain) == kit.settings, "the settings do not survive a round trip through the model"
        with pytest.raises(ValidationError):
            model.model_validate({**plain, "no_such_setting_kit": 1})
        for name, info in model.model_fields.items():
            if info.is_required():
                with pytest.raises(ValidationError, match=name):
                    model.model_validate({k: v for k, v in plain.items() if k != name})
        untyped = [
            name
            for name in model.model_fields
            if _SECRETISH.search(name) and name not in secret_fields(model) and not name.endswith(("_url", "_property"))
        ]
        assert not untyped, (
            f"settings {', '.join(untyped)} look like secrets but are not typed SecretStr (they would be printed)"
        )

    def test_secrets_are_redacted_in_repr_and_logs(self) -> None:
        kit = self.kit
        secrets = _secrets(kit.settings)
        if not secrets:
            pytest.skip(f"{kit.cls.settings_model.__name__} has no secret (SecretStr) settings set")
        lines: list[str] = []
        handler = _Collect(lines)
        root = logging.getLogger()
        old_level = root.level
        # First in line, and each record read as it is emitted: a handler of the application's
        # (with the connector's RedactingFilter) masks a record in place, which would hide what
        # the provider itself wrote. The provider must not log a secret whatever the setup.
        root.handlers.insert(0, handler)
        root.setLevel(logging.DEBUG)
        try:
            with kit.run() as run:
                shown = [repr(kit.settings), str(kit.settings), repr(run.provider), str(run.provider)]
                if kit.cls.streams:
                    run.server.inject(json_response(429, {"error": "rate limited"}, {"Retry-After": "1"}))
                    run.server.inject(json_response(500, {"error": "server error"}))
                    kit.read(run, kit.cls.streams[0], catch=(Exception,))
        finally:
            root.removeHandler(handler)
            root.setLevel(old_level)
        shown += lines
        for secret in secrets:
            leaks = [text[:200] for text in shown if secret in text]
            assert not leaks, f"a secret setting appears in repr or a log line: {leaks[0]!r}"

    def test_declared_capabilities_match_implemented_methods(self) -> None:
        cls = self.kit.cls
        problems = contract_problems(cls)
        assert not problems, f"{cls.__name__}: " + "; ".join(problems)
        declared = {f"read_{s}" for s in cls.streams} | {f"apply_{a}" for a in cls.actions}
        declared |= {f"batch_{a}" for a in cls.batch_limits}
        extra = sorted(
            name
            for name in dir(cls)
            if re.match(r"(read|apply|batch)_[a-z]", name)
            and callable(getattr(cls, name))
            and name not in declared
            and not hasattr(Provider, name)  # the base class's own (apply_batch dispatches)
        )
        assert not extra, (
            f"{cls.__name__} implements {', '.join(extra)} but does not declare the stream or action "
            "in `streams`/`actions` (or, for batch_*, in `batch_limits`): the engine will never call it"
        )
        mapper = self.kit.mapper()
        unmapped = [s for s in cls.streams if s not in mapper.spec.streams]
        assert not unmapped, f"streams {', '.join(unmapped)} have no [streams.NAME] in {cls.mapping_file}"

    # Reading -------------------------------------------------------------------------------

    def test_pagination_terminates(self, stream: str) -> None:
        kit = self.kit
        with kit.run() as run:
            result = kit.read(run, stream)
        assert result.pages, f"read_{stream}() yielded no page at all (yield a Page, even an empty one)"
        for page in result.pages:
            assert page.stream == stream, f"read_{stream}() yielded a page of stream {page.stream!r}"

    def test_a_repeated_cursor_is_caught(self, stream: str) -> None:
        kit = self.kit
        with kit.run() as run:
            kit.read(run, stream)
            reads = [
                e.request for e in run.server.api_events if e.request is not None and run.server.is_read(e.request)
            ]
        paths = [(r.method, r.url.path) for r in reads]
        if len(paths) == len(set(paths)):
            pytest.skip(
                f"the fixtures give {stream} one page per endpoint: record two pages (a smaller page "
                "size) to prove a repeated cursor is caught"
            )
        with kit.run() as run:
            run.server.loop_mode = True
            result = kit.read(run, stream, catch=(PaginationLoopError,), abort_ok=True)
        spun = f" ({result.error})" if isinstance(result.error, KitAbort) else ""
        assert isinstance(result.error, PaginationLoopError), (
            f"read_{stream}() was answered the same page again and again and did not raise "
            f"PaginationLoopError (use connector.http.iter_pages or check the next token yourself){spun}"
        )

    def test_the_cursor_advances_and_resuming_skips_nothing(self, stream: str) -> None:
        kit = self.kit
        mapper = kit.mapper()
        full = _read_all(kit, stream)
        ids = [kit.remote_id(mapper, stream, raw) for raw in full.records]
        doubles = sorted({i for i in ids if ids.count(i) > 1})
        assert not doubles, f"one read of {stream} yielded the same record twice: {', '.join(doubles[:5])}"
        assert any(p.cursor for p in full.pages), (
            f"read_{stream}() never gives a cursor to save: every sync would read everything again"
        )
        page_ids = [[kit.remote_id(mapper, stream, raw) for raw in page.records] for page in full.pages]
        for k, page in enumerate(full.pages):
            if not page.cursor:
                continue
            before = {i for ids_ in page_ids[:k] for i in ids_}
            after = {i for ids_ in page_ids[k + 1 :] for i in ids_}
            # Records changed at the cursor's moment may be read again (the store dedupes
            # them by id); anything older read again means the cursor did not advance.
            seen_times = [
                t for p in full.pages[: k + 1] for raw in p.records if (t := kit.updated(mapper, stream, raw))
            ]
            newest = max(seen_times, default=None)
            overlap = timedelta(seconds=kit.config.overlap_seconds)
            with kit.run() as run:
                resumed = kit.read(run, stream, page.cursor)
            got = {kit.remote_id(mapper, stream, raw) for raw in resumed.records}
            skipped = sorted(after - got)
            assert not skipped, (
                f"resuming {stream} from the cursor of page {k + 1} skipped {', '.join(skipped[:5])} "
                "(records at the cursor boundary must be read again, not lost)"
            )
            again = sorted(
                kit.remote_id(mapper, stream, raw)
                for raw in resumed.records
                if kit.remote_id(mapper, stream, raw) in before
                and not _at_boundary(kit.updated(mapper, stream, raw), newest, overlap)
            )
            assert not again, (
                f"resuming {stream} from the cursor of page {k + 1} read earlier records again "
                f"({', '.join(again[:5])}): the cursor does not advance"
            )
        if not _boundaries(full.pages):
            # Everything above held, but with no page boundary there was nothing to resume
            # into: say so rather than pass.
            records = sum(1 for p in full.pages if p.records)
            pytest.skip(
                f"read_{stream}() gave {records} page(s) of records and no cursor with records after "
                f"it: resuming is only proven across a page boundary; record two pages or more of "
                f"{stream} (a smaller page_size in the settings you give the kit)"
            )

    def test_records_at_the_cursors_moment_survive_a_resume(self, stream: str) -> None:
        kit = self.kit
        mapper = kit.mapper()
        full = _read_all(kit, stream)
        stamped = [
            [(kit.remote_id(mapper, stream, raw), kit.updated(mapper, stream, raw)) for raw in page.records]
            for page in full.pages
        ]
        if not any(t for page in stamped for _, t in page):
            pytest.skip(
                f"the mapping gives {stream} no updated_at: the kit cannot tell which records were "
                "changed at a cursor's moment (a position cursor, such as Stripe's starting_after, "
                "has no moment to lose)"
            )
        # The cursor saved after page k stands for the newest change read so far. A record
        # on a later page changed at that very moment is the one a provider reading
        # `> cursor` (or cursor + 1 s) loses: only such a record proves the boundary.
        proofs: list[tuple[int, Any, list[str]]] = []
        for k in _boundaries(full.pages):
            read_so_far = [(i, t) for page in stamped[: k + 1] for i, t in page]
            moment = max((t for _, t in read_so_far if t is not None), default=None)
            if moment is None:
                continue
            earlier = {i for i, _ in read_so_far}
            tied = sorted({i for page in stamped[k + 1 :] for i, t in page if t == moment and i not in earlier})
            if tied:
                proofs.append((k, moment, tied))
        if not proofs:
            pytest.skip(
                f"no {stream} record read after a page boundary was changed at the same moment as the "
                f"newest one before it, so the data cannot show that records stamped exactly at the "
                f"cursor's moment survive a resume (a provider reading `> cursor` would pass): record "
                f"{stream} where two records changed in the same second fall on either side of a page "
                f"boundary, e.g. three with one updated time and page_size 2 (docs/plugins.md)"
            )
        if len(proofs) > _MAX_PROOFS:  # each is a whole resumed read: a spread of them will do
            step = (len(proofs) - 1) / (_MAX_PROOFS - 1)
            proofs = [proofs[round(n * step)] for n in range(_MAX_PROOFS)]
        for k, moment, tied in proofs:
            with kit.run() as run:
                resumed = kit.read(run, stream, full.pages[k].cursor)
            got = {kit.remote_id(mapper, stream, raw) for raw in resumed.records}
            lost = [i for i in tied if i not in got]
            assert not lost, (
                f"resuming {stream} from the cursor of page {k + 1} lost {', '.join(lost[:5])}, changed "
                f"at the cursor's moment ({_moment(moment)}): read the records at the cursor's moment "
                "again (>= the cursor, floored to the API's precision), never skip them"
            )

    # Mapping ---------------------------------------------------------------------------------

    def test_every_record_maps_to_a_valid_canonical_record(self, stream: str) -> None:
        kit = self.kit
        mapper = kit.mapper()
        with kit.run() as run:
            result = kit.read(run, stream)
        if not result.records:
            pytest.fail(f"the fixtures hold no {stream} record to map: record some")
        mapped, errors = mapper.map_page(stream, result.records)
        assert not errors, f"{len(errors)} {stream} record(s) do not map: " + "; ".join(str(e) for e in errors[:3])
        assert all(m.ref.system == CONNECTION for m in mapped)

    def test_voided_and_deleted_records_map_to_void_or_deleted(self) -> None:
        kit = self.kit
        mapper = kit.mapper()
        cases = kit.config.records
        needs = any(s.record == "invoice" or s.deleted is not None for s in mapper.spec.streams.values())
        if not cases:
            if not needs:
                pytest.skip("the mapping has no invoice stream and no `deleted` field")
            pytest.fail(
                "no void/deleted cases: add [[void]] entries to kit.toml (a voided invoice with "
                'expect = "void", a deleted record with expect = "deleted")'
            )
        for case in cases:
            record = mapper.map_one(case.stream, case.record)
            if case.expect == "deleted":
                assert record.deleted, f"{case.stream} {record.ref.remote_id} should map as deleted"
            else:
                assert getattr(record.record, "status", None) == "void", (
                    f"{case.stream} {record.ref.remote_id} should map to status void, "
                    f"not {getattr(record.record, 'status', None)!r}"
                )

    def test_zero_and_three_decimal_currencies_convert_exactly(self) -> None:
        kit = self.kit
        mapper = kit.mapper()
        cases = kit.config.money
        if not cases:
            pytest.fail(
                "no money cases: add [[money]] entries to kit.toml, at least one in a zero-decimal "
                "currency (JPY) and one in a three-decimal currency (KWD)"
            )
        exponents = {currency_exponent(c.currency) for c in cases}
        missing = [
            name for exp, name in ((0, "zero-decimal (JPY)"), (3, "three-decimal (KWD, BHD)")) if exp not in exponents
        ]
        assert not missing, f"money cases lack a {' and a '.join(missing)} currency"
        for case in cases:
            mapped = mapper.map_one(case.stream, case.record)
            value = _dig(mapped.record, case.field)
            assert isinstance(value, Money), f"{case.stream}.{case.field} maps to {value!r}, not Money"
            expected = Decimal(case.amount)
            assert value.currency == case.currency.upper() and value.amount == expected, (
                f"{case.stream}.{case.field}: expected {expected} {case.currency}, got {value.amount} {value.currency}"
            )
            assert value.amount.as_tuple().exponent == -currency_exponent(value.currency), (
                f"{case.stream}.{case.field}: {value.amount} is not in whole minor units of {value.currency}"
            )

    # Resilience -----------------------------------------------------------------------------

    def test_a_429_with_retry_after_is_retried(self) -> None:
        kit = self.kit
        if not kit.cls.streams:
            pytest.skip("the provider reads no stream")
        stream = kit.cls.streams[0]
        with kit.run() as run:
            run.server.inject(json_response(429, {"error": "rate limited"}, {"Retry-After": "2"}))
            result = kit.read(run, stream, catch=(Exception,))
            events = run.server.api_events
        assert result.error is None, (
            f"a 429 with Retry-After: 2 was not retried: {type(result.error).__name__}: {result.error}"
        )
        assert len(events) >= 2 and events[0].injected
        first, second = events[0].request, events[1].request
        assert first is not None and second is not None
        assert (second.method, second.url.path) == (first.method, first.url.path), (
            "the refused request was not sent again"
        )
        assert 2.0 in run.sleeps, f"Retry-After: 2 was not honoured (waits: {run.sleeps})"

    def test_a_401_triggers_one_token_refresh(self) -> None:
        kit = self.kit
        if not kit.oauth:
            pytest.skip("the settings carry no refresh_token: not an OAuth provider")
        stream = kit.cls.streams[0]
        with kit.run() as run:
            run.server.inject(
                json_response(401, {"error": "unauthorized"}), when=lambda r: "Authorization" in r.headers
            )
            result = kit.read(run, stream, catch=(Exception,))
            events = list(run.server.events)
        assert result.error is None, f"a 401 stopped the read: {type(result.error).__name__}: {result.error}"
        at = next(i for i, e in enumerate(events) if e.injected)
        after = events[at + 1 :]
        nxt = next((i for i, e in enumerate(after) if e.kind == "api"), len(after))
        refreshes = [e for e in after[:nxt] if e.kind == "token"]
        assert len(refreshes) == 1, f"a 401 should cost exactly one token refresh, it cost {len(refreshes)}"
        old, new = events[at].request, after[nxt].request if nxt < len(after) else None
        assert old is not None  # the injected 401 answered a request
        assert new is not None, "the request refused with 401 was not sent again"
        assert new.headers.get("Authorization") != old.headers.get("Authorization"), "the retry used the refused token"

    def test_a_rotated_refresh_token_is_saved_before_it_is_used(self) -> None:
        kit = self.kit
        if not kit.oauth:
            pytest.skip("the settings carry no refresh_token: not an OAuth provider")
        stream = kit.cls.streams[0]
        with kit.run() as run:
            run.server.inject(
                json_response(401, {"error": "unauthorized"}), when=lambda r: "Authorization" in r.headers
            )
            kit.read(run, stream, catch=(Exception,))
            events = list(run.server.events)
        grants = [
            (i, e.response.json())
            for i, e in enumerate(events)
            if e.kind == "token" and e.response is not None and e.response.status_code == 200
        ]
        assert grants, "the provider never spent its refresh token, even after a 401"
        for i, answer in grants:
            access, rotated = answer.get("access_token"), answer.get("refresh_token")
            used = next(
                (
                    j
                    for j, e in enumerate(events)
                    if j > i
                    and e.kind == "api"
                    and e.request is not None
                    and e.request.headers.get("Authorization") == f"Bearer {access}"
                ),
                None,
            )
            saved = next(
                (
                    j
                    for j, e in enumerate(events)
                    if j > i and e.kind == "save" and (e.tokens or {}).get("refresh_token") == rotated
                ),
                None,
            )
            assert saved is not None, (
                "the rotated refresh token was never saved through the TokenStore (pass token_store to "
                "OAuthTokenManager): a restart would spend a dead token"
            )
            assert used is None or saved < used, (
                "the new access token was used before the rotated refresh token was saved"
            )

    # Writes ------------------------------------------------------------------------------------

    def test_each_action_sent_twice_has_one_effect(self, action: ActionKind) -> None:
        kit = self.kit
        case = kit.config.actions.get(action)
        if case is None:
            with kit.run() as run, contextlib.suppress(Exception):  # an unwritten method says so first
                _not_implemented(
                    lambda: run.provider.apply(Action(connection=CONNECTION, kind=action)),
                    f"{kit.cls.__name__}.apply_{action}()",
                )
            pytest.fail(
                f"no case for action {action!r}: add [actions.{action}] with its target and payload "
                "to kit.toml (docs/plugins.md)"
            )
        target = Ref(system=CONNECTION, **case.target) if case.target else None
        planned = Action(connection=CONNECTION, kind=action, target=target, payload=case.payload)
        with kit.run() as run:
            results: list[ActionResult] = []
            marks: list[int] = []
            for _ in range(2):
                marks.append(len(run.server.api_events))
                results.append(
                    _not_implemented(lambda: run.provider.apply(planned), f"{kit.cls.__name__}.apply_{action}()")
                )
            events = run.server.api_events
        writes = [
            [e.request for e in events[a:b] if e.request is not None and not run.server.is_read(e.request)]
            for a, b in ((marks[0], marks[1]), (marks[1], len(events)))
        ]
        assert all(isinstance(r, ActionResult) for r in results), f"apply_{action}() must return an ActionResult"
        assert writes[0], f"apply_{action}() sent no write"
        for attempt, sent in enumerate(writes, 1):
            for request in sent:
                if request.method == "PATCH":
                    continue  # setting the same values twice leaves one state
                assert planned.idempotency_key in _requests_text(request), (
                    f"attempt {attempt} of {action}: {request.method} {request.url.path} does not carry the "
                    "action's idempotency key: sent twice it would act twice"
                )
        assert results[0].remote_id == results[1].remote_id, (
            f"{action} sent twice gave two effects: {results[0].remote_id!r} and {results[1].remote_id!r}"
        )


class _Collect(logging.Handler):
    """Every log line as the provider wrote it, rendered at once (with its traceback)."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__(logging.DEBUG)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


def provider_test_class(
    provider_class: type[Provider],
    *,
    settings: ProviderSettings,
    fixtures: str | Path | None = None,
    router: Router | None = None,
    money: list[MoneyCase] | None = None,
    voids: list[RecordCase] | None = None,
    actions: list[ActionCase] | None = None,
    provider_kwargs: dict[str, Any] | None = None,
    **options: Any,
) -> type:
    """The standard tests of `provider_class`, as a class for pytest to collect:

        TestAcme = provider_test_class(AcmeLedger, settings=AcmeSettings(...), fixtures="tests/fixtures")

    - `settings`: the provider's settings, `base_url` pointing wherever the API is served
      (respx intercepts every request; nothing leaves the process).
    - `fixtures`: a directory with `kit.toml` (recorded answers as [[routes]], [[money]] and
      [[void]] cases, [actions.KIND]); relative to the current directory.
    - `router`: instead of (or beside) recorded routes, the API itself: a function
      `request -> response` (a stateful fake), a factory of one (called with no arguments
      for each check), or a `respx.Router`.
    - `money`, `voids`, `actions`: cases given in Python, added to those of kit.toml.
    - `provider_kwargs`: extra keyword arguments for the provider's constructor.
    - options: `read_only`, `max_requests`, `token_endpoint` ("kit" or "api"),
      `overlap_seconds` (how far before the cursor's moment a resumed read may re-read).
    """
    try:
        config = load_manifest(fixtures) if fixtures is not None else KitConfig()
    except KitSetupError as exc:
        raise KitSetupError(f"{provider_class.__name__}: {exc}") from None
    config.money.extend(money or [])
    config.records.extend(voids or [])
    config.actions.update({a.kind: a for a in actions or []})
    unknown = set(options) - {"read_only", "max_requests", "token_endpoint", "overlap_seconds"}
    if unknown:
        raise TypeError(f"provider_test_class() got unknown options: {', '.join(sorted(unknown))}")
    for key, value in options.items():
        setattr(config, key, value)
    kit = ProviderKit(
        provider_class,
        settings,
        fixtures=fixtures,
        router=router,
        config=config,
        provider_kwargs=dict(provider_kwargs or {}),
    )
    kit._explicit = set(options)
    streams = list(getattr(provider_class, "streams", ()) or ()) or [
        pytest.param(None, marks=pytest.mark.skip(reason="the provider reads no stream"))
    ]
    acts = list(getattr(provider_class, "actions", ()) or ()) or [
        pytest.param(None, marks=pytest.mark.skip(reason="the provider applies no action"))
    ]
    namespace: dict[str, Any] = {
        "kit": kit,
        "__doc__": f"Conformance of {provider_class.__name__} (connector.testing).",
    }
    for name, fn in vars(_Checks).items():
        if not name.startswith("test_"):
            continue
        params = inspect.signature(fn).parameters
        if "stream" in params:
            fn = pytest.mark.parametrize("stream", streams)(_copy_fn(fn))
        elif "action" in params:
            fn = pytest.mark.parametrize("action", acts)(_copy_fn(fn))
        namespace[name] = fn
    return type(f"Test{provider_class.__name__}Conformance", (), namespace)


def _copy_fn(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return fn(self, *args, **kwargs)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    # what pytest reads for the parameters; typeshed's FunctionType does not declare __signature__
    wrapper.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    return wrapper
