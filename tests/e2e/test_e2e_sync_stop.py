"""A stop (SIGTERM) while a pull waits for its rate-limit slot: the stream ends as a stop
between pages does, its pages so far stored with their cursor, and the next run goes on."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

from connector.config import load_config
from connector.errors import StopRequested
from connector.pipeline import sync
from connector.providers.base import Page
from connector.providers.registry import ProviderInfo, Registry
from connector.providers.stripe import StripeProvider
from connector.sandbox import Sandbox
from connector.sandbox.generator import generate
from support.e2e import sync_sandbox, with_credentials


class StoppedAfterAPage(StripeProvider):
    """Reads one page, then its next request finds the process stopping in the limiter."""

    def read(self, stream: str, cursor: str | None) -> Iterator[Page]:
        pages = super().read(stream, cursor)
        yield next(iter(pages))
        raise StopRequested("stopping: a request waiting for its rate-limit slot was not sent")


def test_a_stop_while_waiting_for_a_slot_ends_the_stream_and_keeps_its_cursor(tmp_path: Path) -> None:
    book = with_credentials(generate(3, "small", today=date.today()).data)
    with Sandbox(book, limits="off") as sandbox:
        store, _ = sync_sandbox(sandbox, tmp_path, streams=["(none)"])
        config = load_config(str(tmp_path / "connector.toml"))
        registry = Registry(
            [ProviderInfo(name="stripe", origin="tests 0", target="tests:StoppedAfterAPage", cls=StoppedAfterAPage)]
        )
        stopped: Any = sync(config, store, registry, connections=["gateway"], streams=["customers"], then_link=False)
        [stream] = stopped.streams
        assert stream.status == "ok" and stream.pages == 1 and not stream.errors
        assert stream.notes == ["stopped for shutdown; resumes from the saved cursor"]
        assert store.get_cursor("gateway", "customers") is not None
        # the next run goes on from there
        again = sync(config, store, connections=["gateway"], streams=["customers"], then_link=False)
        assert again.streams[0].status == "ok"
        store.close()
