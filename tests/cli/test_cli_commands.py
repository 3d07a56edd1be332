"""The root command imports a command's module when the command is asked for: the table of
which module holds which command is the one place that names them, so it must list every
command the modules declare, and a command must not pay for what only other commands use."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import click

import connector.cli
from connector.cli.main import BOOK_COMMANDS, COMMAND_MODULES, cli


def _declared() -> dict[str, str]:
    """Every top-level command a module of connector.cli declares in its `COMMANDS`."""
    declared = {}
    for info in pkgutil.iter_modules(connector.cli.__path__, "connector.cli."):
        module = importlib.import_module(info.name)
        for command in getattr(module, "COMMANDS", ()):
            assert command.name not in declared, f"{command.name} declared twice"
            declared[command.name] = info.name
    return declared


def test_the_table_names_every_command_the_modules_declare_and_no_other():
    assert COMMAND_MODULES == _declared()


def test_connector_help_lists_every_command(run_cli):
    result = run_cli("--help")
    assert result.exit_code == 0
    listed = result.stdout.split("Commands:")[1]
    assert all(f"\n  {name} " in listed for name in COMMAND_MODULES)


def _resolve(path: str) -> click.Command:
    context = click.Context(cli)
    command: click.Command | None = cli
    for name in path.split():
        assert isinstance(command, click.Group)
        command = command.get_command(context, name)
        assert command is not None, path
    assert command is not None
    return command


def test_every_book_command_takes_company_once():
    for path in sorted(BOOK_COMMANDS):
        options = [p for p in _resolve(path).params if "--company" in getattr(p, "opts", ())]
        assert len(options) == 1, path


def test_explain_starts_without_the_pdf_the_web_server_the_sandbox_or_psycopg():
    """`connector explain` on SQLite imports neither what statements (PDF), the service and
    workbench (web server), the demo (sandbox) nor PostgreSQL need."""
    heavy = ("fpdf", "uvicorn", "starlette", "connector.sandbox", "psycopg")
    probe = (
        "import sys\n"
        "from connector.cli.main import cli\n"
        "cli.main(['explain', '--help'], standalone_mode=False)\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.strip().splitlines()[-1] == "[]"
