"""`connector serve`: the scheduled service with its HTTP listener."""

from __future__ import annotations

import logging
import os
import signal
import threading

import click
from starlette.types import ASGIApp

from connector.actors import current_user
from connector.cli.context import AppContext, pass_app
from connector.errors import UsageError
from connector.http.ratelimit import STOPPING
from connector.service.listener import Limits, Listener
from connector.service.loop import Service, parse_every
from connector.workbench import MIN_TOKEN, Access, Book, workbench

logger = logging.getLogger("connector.service")


def listen_address(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise UsageError(f"--listen: {value!r} is not HOST:PORT with a port from 0 to 65535 (e.g. 127.0.0.1:8780)")
    return host, int(port)


@click.command("serve")
@click.option(
    "--every",
    default="15m",
    show_default=True,
    help="Interval between runs (90s, 15m, 1h); a connection's `schedule` (cron) wins for its pulls.",
)
@click.option(
    "--listen",
    default="127.0.0.1:8780",
    show_default=True,
    help="HOST:PORT of /healthz, /readyz, /metrics and /webhooks/*.",
)
@click.option(
    "--public-url", help="The URL providers reach the listener at (behind a reverse proxy); HubSpot signs it."
)
@click.option(
    "--lease",
    default="10m",
    show_default=True,
    help="How long a claimed unit stays this worker's before another may take it over.",
)
@click.option(
    "--heartbeat-timeout",
    default="60s",
    show_default=True,
    help="A worker silent this long is taken for dead: what it holds is taken over at once, on any host.",
)
@click.option(
    "--webhook-max-bytes",
    type=click.IntRange(min=1024),
    default=Limits.webhook_body,
    show_default=True,
    help="Largest webhook body taken; a larger one is answered 413 without being read.",
)
@click.option(
    "--ui",
    "with_ui",
    is_flag=True,
    help="Also serve the finance workbench at /ui/, behind the token in $CONNECTOR_UI_TOKEN.",
)
@click.option("--max-ticks", type=int, help="Stop after this many ticks (for tests and one-off runs).")
@pass_app
def serve_command(
    app: AppContext,
    every: str,
    listen: str,
    public_url: str | None,
    lease: str,
    heartbeat_timeout: str,
    webhook_max_bytes: int,
    with_ui: bool,
    max_ticks: int | None,
) -> None:
    """Run sync, reconcile, plan, apply and reminders on a schedule until SIGTERM/SIGINT.

    Every company of the config is served, each company's work apart from the others'."""

    host, port = listen_address(listen)
    ui_token = _ui_token() if with_ui else None
    interval, lease_time = parse_every(every, "--every"), parse_every(lease, "--lease")
    silence = parse_every(heartbeat_timeout, "--heartbeat-timeout")
    service = Service(app.root_config(), app.root_store(), interval, lease=lease_time, heartbeat_timeout=silence)
    service.take_sqlite_lock()  # a refused second worker on SQLite says so before anything else
    try:
        ui = None if ui_token is None else _workbench(app, service, ui_token)
        listener = Listener(
            service, host, port, public_url=public_url, limits=Limits(webhook_body=webhook_max_bytes), ui=ui
        )
    except OSError as exc:
        service.release_sqlite_lock()
        raise UsageError(f"--listen {listen}: {exc.strerror or exc}") from None
    except BaseException:
        service.release_sqlite_lock()
        raise
    stop_requested = threading.Event()

    def stop(signum: int, _frame: object) -> None:
        logger.warning("received %s: finishing the piece in hand, then stopping", signal.Signals(signum).name)
        stop_requested.set()
        service.stop.set()
        service.wake.set()
        STOPPING.set()  # a request waiting for its rate-limit slot is not sent

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    listener.start()
    companies = f"; companies {', '.join(service.companies)}" if len(service.companies) > 1 else ""
    click.echo(f"serving every {every}; listener on {listener.address} (worker {service.worker}){companies}", err=True)
    if ui_token is not None:
        click.echo(f"workbench on {listener.address}/ui/ (token from $CONNECTOR_UI_TOKEN)", err=True)
    try:
        service.run(max_ticks=max_ticks)
    finally:
        listener.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        STOPPING.clear()
    click.echo("stopped", err=True)


def _ui_token() -> str:
    """`--ui` needs a token from the environment: the service prints none."""
    token = os.environ.get("CONNECTOR_UI_TOKEN", "")
    if not token:
        raise UsageError(
            "--ui needs a token in $CONNECTOR_UI_TOKEN "
            '(e.g. python3 -c "import secrets; print(secrets.token_urlsafe(32))")'
        )
    if len(token) < MIN_TOKEN or not token.isascii() or not token.isprintable() or " " in token:
        raise UsageError(f"$CONNECTOR_UI_TOKEN must be at least {MIN_TOKEN} printable ASCII characters without spaces")
    return token


def _workbench(app: AppContext, service: Service, token: str) -> ASGIApp:
    """Each company's workbench under /ui/ (at /ui/COMPANY/ when there are several)."""
    books = {
        company: Book(company, app.config(company), app.store(company), current_user(None))
        for company in service.companies
    }
    return workbench(books, Access(token))


COMMANDS = [serve_command]
