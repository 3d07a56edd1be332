"""`connector serve`: the scheduled service with its HTTP listener."""

from __future__ import annotations

import logging
import signal
import threading

import click

from connector.cli.context import AppContext, pass_app
from connector.errors import UsageError
from connector.service.listener import Limits, Listener
from connector.service.loop import Service, parse_every

logger = logging.getLogger("connector.service")


def _listen(value: str) -> tuple[str, int]:
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
    "--webhook-max-bytes",
    type=click.IntRange(min=1024),
    default=Limits.webhook_body,
    show_default=True,
    help="Largest webhook body taken; a larger one is answered 413 without being read.",
)
@click.option("--max-ticks", type=int, help="Stop after this many ticks (for tests and one-off runs).")
@pass_app
def serve_command(
    app: AppContext,
    every: str,
    listen: str,
    public_url: str | None,
    lease: str,
    webhook_max_bytes: int,
    max_ticks: int | None,
) -> None:
    """Run sync, reconcile, plan, apply and reminders on a schedule until SIGTERM/SIGINT.

    Every company of the config is served, each company's work apart from the others'."""

    host, port = _listen(listen)
    interval, lease_time = parse_every(every, "--every"), parse_every(lease, "--lease")
    service = Service(app.root_config(), app.root_store(), interval, lease=lease_time)
    service.take_sqlite_lock()  # a refused second worker on SQLite says so before anything else
    try:
        listener = Listener(service, host, port, public_url=public_url, limits=Limits(webhook_body=webhook_max_bytes))
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

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    listener.start()
    companies = f"; companies {', '.join(service.companies)}" if len(service.companies) > 1 else ""
    click.echo(f"serving every {every}; listener on {listener.address} (worker {service.worker}){companies}", err=True)
    try:
        service.run(max_ticks=max_ticks)
    finally:
        listener.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    click.echo("stopped", err=True)


COMMANDS = [serve_command]
