"""The sandbox's data, checked before any face loads it: a bad file is one clear sentence
that names the place (`xero Invoices[0] has no InvoiceID`), never a KeyError from deep
inside a face.

    data = read_data("book.json")     # SandboxDataError: not JSON (line 2 column 1)
    check_data(data)                  # SandboxDataError: hubspot deals must be a list ...
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from connector.sandbox.common import loads
from connector.sandbox.hubspot_api import TYPES as HUBSPOT_TYPES
from connector.sandbox.quickbooks_api import ENTITIES as QUICKBOOKS_ENTITIES
from connector.sandbox.stripe_api import COLLECTIONS as STRIPE_COLLECTIONS
from connector.sandbox.xero_api import COLLECTIONS as XERO_COLLECTIONS

# section -> list name -> (id field, the id's accepted JSON types)
_TEXT: tuple[type, ...] = (str,)
_TEXT_OR_NUMBER: tuple[type, ...] = (str, int)
LISTS: dict[str, dict[str, tuple[str, tuple[type, ...]]]] = {
    "stripe": {name: ("id", _TEXT) for name in STRIPE_COLLECTIONS},
    "xero": {name: (key, _TEXT) for name, (key, _) in XERO_COLLECTIONS.items()},
    "hubspot": {name: ("id", _TEXT_OR_NUMBER) for name in HUBSPOT_TYPES},
    "quickbooks": {name: ("Id", _TEXT_OR_NUMBER) for name in QUICKBOOKS_ENTITIES},
}
SECTIONS = (*LISTS, "credentials")


class SandboxDataError(ValueError):
    """The sandbox's data cannot be used; the message names the place."""


def read_data(source: dict[str, Any] | str | Path | None) -> dict[str, Any]:
    """Sandbox data from a dict, a JSON file (amounts kept exact, the shape checked) or nothing."""
    if source is None:
        return {}
    if isinstance(source, dict):
        return source  # Sandbox.load_data checks it
    try:
        raw = Path(source).read_bytes()
    except OSError as exc:
        raise SandboxDataError(f"cannot read it: {exc.strerror or exc}") from None
    try:
        data = loads(raw)
    except json.JSONDecodeError as exc:
        raise SandboxDataError(f"not JSON (line {exc.lineno} column {exc.colno}: {exc.msg})") from None
    except UnicodeDecodeError:
        raise SandboxDataError("not JSON (not UTF-8 text)") from None
    except RecursionError:
        raise SandboxDataError("not usable JSON (nested too deeply)") from None
    check_data(data)
    checked: dict[str, Any] = data  # check_data refused anything but an object
    return checked


def check_data(data: Any) -> None:
    """Raise SandboxDataError unless `data` has the shape docs/sandbox.md describes: an object
    of known sections, each an object of known lists, each list of objects that carry their id."""
    if not isinstance(data, dict):
        raise SandboxDataError(f"the top level must be an object with {_names(SECTIONS)}, not {_kind(data)}")
    unknown = [name for name in data if name not in SECTIONS]
    if unknown:
        raise SandboxDataError(f"unknown section {unknown[0]!r}; known: {', '.join(SECTIONS)}")
    for section, lists in LISTS.items():
        block = data.get(section)
        if block is None:
            continue
        if not isinstance(block, dict):
            raise SandboxDataError(f"{section} must be an object of lists ({_names(lists)}), not {_kind(block)}")
        for name, records in block.items():
            if section == "quickbooks" and name == "Preferences":
                if records is not None and not isinstance(records, dict):
                    raise SandboxDataError(f"quickbooks Preferences must be an object, not {_kind(records)}")
                continue
            if name not in lists:
                raise SandboxDataError(f"{section}: unknown list {name!r}; known: {', '.join(lists)}")
            _check_list(section, name, records, *lists[name])
    _check_credentials(data.get("credentials"))


def _check_list(section: str, name: str, records: Any, key: str, id_types: tuple[type, ...]) -> None:
    if records is None:
        return
    if not isinstance(records, list):
        raise SandboxDataError(f"{section} {name} must be a list of objects, not {_kind(records)}")
    for index, record in enumerate(records):
        place = f"{section} {name}[{index}]"
        if not isinstance(record, dict):
            raise SandboxDataError(f"{place} must be an object, not {_kind(record)}")
        if key not in record:
            raise SandboxDataError(f"{place} has no {key}")
        ident = record[key]
        if isinstance(ident, bool) or not isinstance(ident, id_types) or ident == "":
            wanted = "a non-empty string" if id_types == _TEXT else "a non-empty string or an integer"
            raise SandboxDataError(f"{place} {key} must be {wanted}, not {_kind(ident)}")
        if (
            section == "stripe"
            and "created" in record
            and (isinstance(record["created"], bool) or not isinstance(record["created"], (int, type(None))))
        ):
            raise SandboxDataError(
                f"{place} created must be epoch seconds (an integer), not {_kind(record['created'])}"
            )
        if section == "hubspot":
            _check_hubspot(place, record)


def _check_hubspot(place: str, record: dict[str, Any]) -> None:
    properties = record.get("properties")
    if properties is not None and not isinstance(properties, dict):
        raise SandboxDataError(f"{place} properties must be an object, not {_kind(properties)}")
    links = record.get("associations")
    if links is None:
        return
    if not isinstance(links, dict):
        raise SandboxDataError(f"{place} associations must be an object by object type, not {_kind(links)}")
    for to_type, block in links.items():
        if block is None:
            continue
        if not isinstance(block, dict):
            raise SandboxDataError(f"{place} associations.{to_type} must be an object with results, not {_kind(block)}")
        results = block.get("results")
        if results is None:
            continue
        if not isinstance(results, list):
            raise SandboxDataError(f"{place} associations.{to_type}.results must be a list, not {_kind(results)}")
        for index, link in enumerate(results):
            if not isinstance(link, dict) or "id" not in link:
                raise SandboxDataError(f"{place} associations.{to_type}.results[{index}] has no id")


def _check_credentials(credentials: Any) -> None:
    if credentials is None:
        return
    if not isinstance(credentials, dict):
        raise SandboxDataError(f"credentials must be an object by provider, not {_kind(credentials)}")
    unknown = [name for name in credentials if name not in LISTS]
    if unknown:
        raise SandboxDataError(f"credentials: unknown provider {unknown[0]!r}; known: {', '.join(LISTS)}")
    keys = credentials.get("stripe")
    if keys is not None and not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
        raise SandboxDataError(f"credentials stripe must be a list of API keys (strings), not {_kind(keys)}")
    for provider in ("xero", "hubspot", "quickbooks"):
        block = credentials.get(provider)
        if block is not None and not isinstance(block, dict):
            raise SandboxDataError(f"credentials {provider} must be an object, not {_kind(block)}")


def _names(names: Any) -> str:
    names = list(names)
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else "".join(names)


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) or type(value).__name__ == "Decimal":
        return f"a number ({value})"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:17] + "..."
        return f"a string ({json.dumps(shown)})"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
