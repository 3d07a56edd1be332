"""`connector plugin new`: write a ready-to-install provider plugin package.

    write_plugin(name="acme", kind="ledger", directory=Path("connector-acme"))

The templates (`templates.py`) are Python string constants, so they ship with the package
without package-data rules.
"""

from __future__ import annotations

import re
from pathlib import Path

from connector.scaffold.templates import KINDS, render_files

NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


class ScaffoldError(ValueError):
    """The name, kind or directory cannot be used; the message is one line."""


def check_name(name: str) -> None:
    if not NAME.match(name) or name.endswith("_") or "__" in name:
        raise ScaffoldError(
            f"invalid plugin name {name!r}: use 2-40 lower-case letters, digits and single "
            "underscores, starting with a letter (e.g. quickbooks, acme_ledger)"
        )


def write_plugin(name: str, kind: str, directory: Path) -> list[Path]:
    """Create `directory` with the plugin package; returns the files written."""
    check_name(name)
    if kind not in KINDS:
        raise ScaffoldError(f"unknown kind {kind!r}: use one of {', '.join(KINDS)}")
    try:
        exists = directory.exists()
    except OSError as exc:  # a name too long, a component that is a file, ...
        raise ScaffoldError(f"cannot write {directory}: {exc.strerror or exc}") from None
    if exists:
        raise ScaffoldError(f"{directory} already exists: choose another --dir or remove it")
    written = []
    try:
        for relative, text in render_files(name, kind).items():
            path = directory / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            written.append(path)
    except OSError as exc:  # a parent that is a file, no permission, a full disk
        raise ScaffoldError(f"cannot write {directory}: {exc.strerror or exc}") from None
    return written


__all__ = ["KINDS", "ScaffoldError", "check_name", "write_plugin"]
