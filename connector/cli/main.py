"""The root `connector` command: global options, and the one place errors become exit codes."""

from __future__ import annotations

import sys
import traceback
from typing import Any

import click

from connector import __version__
from connector.cli import (
    admin,
    audit_commands,
    collections_commands,
    company_commands,
    demo_commands,
    mapping_commands,
    plugin_commands,
    reconcile_commands,
    remap_commands,
    report_commands,
    secret_commands,
    serve_commands,
    statement_commands,
    sync_commands,
    ui_commands,
    writeback_commands,
)
from connector.cli.context import ENV_COMPANY, AppContext, company_option
from connector.errors import EXIT_FAILURE, EXIT_USAGE, ConfigError, ConnectorError, exit_code
from connector.logs import configure_logging
from connector.redaction import redact


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="connector")
@click.option(
    "--config",
    "config_option",
    metavar="PATH",
    help="Config file (default: $CONNECTOR_CONFIG, else ./connector.toml).",
)
@click.option(
    "--log-format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
    help="Log lines on stderr as text or JSON.",
)
@click.option(
    "--company",
    "company",
    metavar="NAME",
    envvar=ENV_COMPANY,
    help="The company whose book the command works on (or after the command's name).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("--debug", is_flag=True, help="Show the traceback when a command fails.")
@click.pass_context
def cli(
    ctx: click.Context, config_option: str | None, log_format: str, company: str | None, verbose: int, debug: bool
) -> None:
    """Accounts-receivable sync: CRM, ledger and payment gateway in one picture."""
    configure_logging(verbosity=verbose, log_format=log_format)
    ctx.obj = AppContext(config_option=config_option, debug=debug, company_option=company)
    ctx.call_on_close(ctx.obj.close)


# The commands that read or change one company's book: each takes `--company NAME`.
BOOK_COMMANDS = frozenset(
    {
        "sync",
        "remap",
        "reconcile",
        "reconcile accept",
        "reconcile reject",
        "reconcile match",
        "reconcile unmatch",
        "invoices list",
        "payments list",
        "customers show",
        "aging",
        "explain",
        "drift",
        "plan",
        "apply",
        "actions list",
        "actions retry",
        "actions cancel",
        "dispute",
        "promise",
        "plan-payments",
        "pause",
        "reminders",
        "reminders plan",
        "ui",
        "statement",
        "audit",
        "audit list",
    }
)


def _add_company_options(group: click.Group, prefix: str = "") -> None:
    for name, command in group.commands.items():
        path = f"{prefix}{name}"
        if path in BOOK_COMMANDS:
            command.params.append(company_option())
        if isinstance(command, click.Group):
            _add_company_options(command, f"{path} ")


def _register_commands() -> None:
    modules = (
        admin,
        company_commands,
        mapping_commands,
        sync_commands,
        remap_commands,
        reconcile_commands,
        report_commands,
        statement_commands,
        audit_commands,
        writeback_commands,
        collections_commands,
        serve_commands,
        demo_commands,
        plugin_commands,
        secret_commands,
        ui_commands,
    )
    for module in modules:
        for command in module.COMMANDS:
            cli.add_command(command)


_register_commands()
_add_company_options(cli)


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI; every error leaves as one line on stderr and a documented exit code:
    0 ok, 1 finished with problems, 2 usage or configuration error, 3 provider/auth/state
    failure."""
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        result = cli.main(args=argv, prog_name="connector", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_USAGE)
    except click.UsageError as exc:
        # one line, like every other error; `COMMAND --help` has the full usage
        command = exc.ctx.command_path if exc.ctx is not None else "connector"
        click.echo(f"error: {exc.format_message()} (see `{command} --help`)", err=True)
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConnectorError as exc:
        if debug:
            traceback.print_exc()
        # configuration errors name keys, never values: only registered secrets are masked
        click.echo(f"error: {redact(str(exc), shapes=not isinstance(exc, ConfigError))}", err=True)
        sys.exit(exit_code(exc))
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception as exc:  # a bug of ours: still one line unless --debug
        if debug:
            traceback.print_exc()
        lines = str(exc).strip().splitlines()
        first = (lines[0] if lines else "")[:300]
        click.echo(
            f"internal error: {type(exc).__name__}: {redact(first)} (run with --debug for details)",
            err=True,
        )
        sys.exit(EXIT_FAILURE)
    if isinstance(result, int):
        sys.exit(result)
    sys.exit(0)
