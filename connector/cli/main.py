"""The root `connector` command: global options, and the one place errors become exit codes.

A command's module is imported when the command runs (`COMMAND_MODULES`, click's "lazily
loading subcommands"), not at start: `connector explain` does not pay for the PDF and XLSX
libraries, the sandbox or the web server that other commands need (about half of what the
whole CLI imports). Each command module still names its dependencies at its top;
tests/cli/test_cli_commands.py holds the table equal to the modules' `COMMANDS`.
"""

from __future__ import annotations

import gc
import importlib
import sys
import traceback
from typing import Any

import click

from connector import __version__
from connector.cli.context import ENV_COMPANY, AppContext, company_option
from connector.errors import EXIT_FAILURE, EXIT_USAGE, ConfigError, ConnectorError, exit_code
from connector.logs import configure_logging
from connector.memory import limit_arenas
from connector.redaction import redact

# Each top-level command, the module whose `COMMANDS` holds it.
COMMAND_MODULES: dict[str, str] = {
    "init": "connector.cli.admin",
    "providers": "connector.cli.admin",
    "db": "connector.cli.admin",
    "doctor": "connector.cli.admin",
    "companies": "connector.cli.company_commands",
    "mappings": "connector.cli.mapping_commands",
    "sync": "connector.cli.sync_commands",
    "remap": "connector.cli.remap_commands",
    "reconcile": "connector.cli.reconcile_commands",
    "invoices": "connector.cli.report_commands",
    "payments": "connector.cli.report_commands",
    "customers": "connector.cli.report_commands",
    "aging": "connector.cli.report_commands",
    "explain": "connector.cli.explain_commands",
    "drift": "connector.cli.report_commands",
    "statement": "connector.cli.statement_commands",
    "audit": "connector.cli.audit_commands",
    "plan": "connector.cli.writeback_commands",
    "apply": "connector.cli.writeback_commands",
    "actions": "connector.cli.writeback_commands",
    "dispute": "connector.cli.collections_commands",
    "promise": "connector.cli.collections_commands",
    "plan-payments": "connector.cli.collections_commands",
    "pause": "connector.cli.collections_commands",
    "reminders": "connector.cli.collections_commands",
    "serve": "connector.cli.serve_commands",
    "demo": "connector.cli.demo_commands",
    "sandbox": "connector.cli.demo_commands",
    "plugin": "connector.cli.plugin_commands",
    "secret-key": "connector.cli.secret_commands",
    "tokens": "connector.cli.secret_commands",
    "ui": "connector.cli.ui_commands",
}


class CommandsOnDemand(click.Group):
    """The root group: a command is imported from its module the first time it is asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*COMMAND_MODULES, *self.commands})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            load_command(self, cmd_name)
        return self.commands.get(cmd_name)


def load_command(group: click.Group, name: str) -> click.Command:
    """Import `name`'s module, add the command to the root group with `--company` on each of
    its book commands; once per process."""
    module = importlib.import_module(COMMAND_MODULES[name])
    command: click.Command | None = next((c for c in module.COMMANDS if c.name == name), None)
    if command is None:  # the table and the module disagree: a bug of ours
        raise LookupError(f"{COMMAND_MODULES[name]} has no command {name!r}")
    _add_company_options(command, name)
    group.add_command(command)
    return command


@click.group(cls=CommandsOnDemand, context_settings={"help_option_names": ["-h", "--help"]})
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


def _add_company_options(command: click.Command, path: str) -> None:
    if path in BOOK_COMMANDS:
        command.params.append(company_option())
    if isinstance(command, click.Group):
        for name, sub in command.commands.items():
            _add_company_options(sub, f"{path} {name}")


# Python collects its youngest objects every 700 allocations. A report or an engine pass makes
# millions of small objects (rows, models, amounts) that form no cycles, so those collections
# free nothing: 5-16 % of the time on the large book (docs/benchmarks.md, "Fewer garbage
# collections"). They still run, every 50,000 allocations.
GC_THRESHOLDS = (50_000, 20, 100)


def main(argv: list[str] | None = None) -> Any:
    """Run the CLI; every error leaves as one line on stderr and a documented exit code:
    0 ok, 1 finished with problems, 2 usage or configuration error, 3 provider/auth/state
    failure."""
    gc.set_threshold(*GC_THRESHOLDS)
    limit_arenas()  # before a command starts its threads (a sync's streams)
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
