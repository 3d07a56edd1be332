"""`connector secret-key new`: the key that seals stored OAuth tokens (see `connector.state.secrets`);
`connector tokens forget`: drop a connection's stored tokens, to authorise it again."""

from __future__ import annotations

import os
from pathlib import Path

import click

from connector.actors import current_user
from connector.cli.context import AppContext, pass_app
from connector.errors import UsageError
from connector.state.secrets import ENV_SECRET_KEY, new_key

HOW_TO_SET = f"""\
Keep it like a password, and keep a copy: without it the stored OAuth tokens cannot be read.
Set it where the connector runs, one of:
  {ENV_SECRET_KEY}=KEY in the service's environment (an EnvironmentFile readable by it only)
  a file readable by the service only, named in connector.toml: [database] secret_key = "file:PATH"
  a systemd credential: LoadCredential=secret_key:PATH in the unit, and
    secret_key = "file:/run/credentials/connector.service/secret_key"
To rotate: put the new key first and the old one after a comma (NEW,OLD), run
`connector db upgrade` to re-seal the stored tokens with the new key, then drop the old one."""


@click.group("secret-key")
def secret_key_group() -> None:
    """The secret key that seals the stored OAuth tokens."""


@secret_key_group.command("new")
@click.option(
    "--file",
    "target",
    metavar="PATH",
    help="Write the key to PATH (created readable by you only; never overwritten) instead of printing it.",
)
def secret_key_new(target: str | None) -> None:
    """Make a new secret key (Fernet): printed on stdout, how to set it on stderr."""
    key = new_key()
    if target is None:
        click.echo(key)
        click.echo(HOW_TO_SET, err=True)
        return
    path = Path(target)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(
            f"{path} already exists: a key file is never overwritten (it may hold the key your tokens are sealed with)"
        ) from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None
    try:
        os.write(descriptor, f"{key}\n".encode("ascii"))
    finally:
        os.close(descriptor)
    click.echo(f'wrote a new secret key to {path}; name it with secret_key = "file:{path.resolve()}"', err=True)
    click.echo(HOW_TO_SET, err=True)


@click.group("tokens")
def tokens_group() -> None:
    """The OAuth tokens stored for the connections."""


@tokens_group.command("forget")
@click.argument("connection")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--user", help="Who forgets them (default: the OS user).")
@pass_app
def tokens_forget(app: AppContext, connection: str, yes: bool, user: str | None) -> None:
    """Drop CONNECTION's stored OAuth tokens: the next run starts from the refresh_token in the
    config (authorise the connection again first). For tokens sealed with a lost key, or
    refused by the provider."""
    if not yes:
        click.confirm(
            f"forget the stored tokens of {connection}? Its stored refresh token is lost; the next run uses the one "
            "in the config",
            abort=True,
        )
    store = app.root_store()
    with store.session() as session:
        forgotten = store.forget_tokens(connection, session=session)
        if forgotten:
            store.audit(current_user(user), "tokens_forgotten", "connection", connection, session=session)
    if not forgotten:
        raise UsageError(f"no tokens are stored for connection {connection!r}")
    click.echo(f"forgot the stored tokens of {connection}: the next run uses the refresh_token in the config")


COMMANDS = [secret_key_group, tokens_group]
