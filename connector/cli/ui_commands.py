"""`connector ui`: the local web workbench for the chosen company's book (see
connector/workbench), served on loopback behind a random token printed in its URL."""

from __future__ import annotations

import ipaddress
import os
import socket

import click
import uvicorn

from connector.actors import current_user
from connector.cli.context import AppContext, pass_app
from connector.cli.serve_commands import listen_address
from connector.errors import UsageError
from connector.workbench import MIN_TOKEN, Access, Book, loopback_hosts, new_token, workbench

ENV_TOKEN = "CONNECTOR_UI_TOKEN"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def ui_token() -> str | None:
    """The token given in $CONNECTOR_UI_TOKEN, checked; None when none is given."""
    token = os.environ.get(ENV_TOKEN)
    if token is None or token == "":
        return None
    if len(token) < MIN_TOKEN or not token.isascii() or not token.isprintable() or " " in token:
        raise UsageError(
            f"${ENV_TOKEN} must be at least {MIN_TOKEN} printable ASCII characters without spaces "
            '(e.g. python3 -c "import secrets; print(secrets.token_urlsafe(32))")'
        )
    return token


@click.command("ui")
@click.option(
    "--listen", default="127.0.0.1:8790", show_default=True, help="HOST:PORT to serve the workbench on (port 0: any)."
)
@click.option(
    "--allow-remote",
    is_flag=True,
    help="Allow a --listen address other machines reach (anyone with the token may then decide on the book).",
)
@click.option("--user", help="Who decides (default: the OS user); kept in the audit log.")
@pass_app
def ui_command(app: AppContext, listen: str, allow_remote: bool, user: str | None) -> None:
    """Serve the finance workbench: the aging chart, DSO, open proposals to accept, reject or
    match, customers, parked actions and drift. Prints the URL with its token; a request
    without it answers 401. The token is random, or $CONNECTOR_UI_TOKEN."""
    host, port = listen_address(listen)
    loopback = is_loopback(host)
    if not loopback and not allow_remote:
        raise UsageError(
            f"--listen {listen} is reachable from other machines: add --allow-remote to serve the workbench there"
        )
    given = ui_token()
    book = Book(app.company(), app.config(), app.store(), current_user(user))
    token = given or new_token()
    sock = _bind(host, port, listen)
    bound = sock.getsockname()[1]
    shown = f"[{host.strip('[]')}]" if ":" in host else host
    access = Access(token, hosts=loopback_hosts(bound) if loopback else None)
    config = uvicorn.Config(
        workbench({book.company: book}, access),
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,  # the first request's URL carries the token
        proxy_headers=False,
        server_header=False,
        limit_concurrency=64,
        timeout_keep_alive=5,
    )
    url = f"http://{shown}:{bound}/"
    if not loopback:
        click.echo(
            f"warning: serving on {shown}:{bound}, reachable from other machines without TLS: anyone with the "
            "token can decide on this book",
            err=True,
        )
    where = f"{url}?token={token}" if given is None else f"{url} (token from ${ENV_TOKEN})"
    click.echo(f"workbench for {book.company} at {where}", err=True)
    click.echo("Ctrl-C stops it", err=True)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()


def _bind(host: str, port: int, listen: str) -> socket.socket:
    bare = host.strip("[]")
    family = socket.AF_INET6 if ":" in bare else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((bare, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise UsageError(f"--listen {listen}: {exc.strerror or exc}") from None
    return sock


COMMANDS = [ui_command]
