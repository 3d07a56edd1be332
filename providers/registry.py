"""Discover providers through the `connector.providers` entry-point group and check them.

Built-in providers register exactly like a partner's plugin, in their distribution's
pyproject.toml:

    [project.entry-points."connector.providers"]
    acme = "acme_connector:AcmeLedger"

A plugin that fails to import or breaks the provider contract is kept as *broken* with the
reason; the others still load, and asking for a broken one by name says why it is unusable.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import EntryPoint, entry_points
from typing import Any, get_args

from connector.errors import ConfigError, PluginError
from connector.model import ActionKind
from connector.providers.base import PROVIDER_KINDS, Provider, ProviderSettings

ENTRY_POINT_GROUP = "connector.providers"
KNOWN_ACTIONS: frozenset[str] = frozenset(get_args(ActionKind))


@dataclass
class ProviderInfo:
    """One entry point and what became of it."""

    name: str
    origin: str  # "distribution version"
    target: str  # "module:Class"
    cls: type[Provider] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.cls is not None and not self.problems

    def as_dict(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "name": self.name,
            "status": "ok" if self.ok else "broken",
            "origin": self.origin,
            "target": self.target,
        }
        if self.cls is not None and self.ok:
            info["kind"] = self.cls.kind
            info["capabilities"] = {
                "streams": list(self.cls.streams),
                "actions": list(self.cls.actions),
            }
        else:
            info["reason"] = "; ".join(self.problems)
        return info


def contract_problems(cls: Any, entry_name: str | None = None) -> list[str]:
    """Everything wrong with a provider class; an empty list means it may be used."""
    if not (inspect.isclass(cls) and issubclass(cls, Provider)):
        return [f"{cls!r} is not a subclass of providers.base.Provider"]
    problems: list[str] = []
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not name:
        problems.append("declares no `name`")
    elif entry_name is not None and name != entry_name:
        problems.append(f"declares name {name!r} but is registered as {entry_name!r}")
    kind = getattr(cls, "kind", None)
    if kind not in PROVIDER_KINDS:
        problems.append(f"kind {kind!r} is not one of {', '.join(PROVIDER_KINDS)}")
    settings = getattr(cls, "settings_model", None)
    if not (inspect.isclass(settings) and issubclass(settings, ProviderSettings)):
        problems.append("settings_model is not a ProviderSettings subclass")
    streams = getattr(cls, "streams", ())
    actions = getattr(cls, "actions", ())
    if not streams and not actions:
        problems.append("declares no streams and no actions")
    for stream in streams:
        if not callable(getattr(cls, f"read_{stream}", None)):
            problems.append(f"declares stream {stream!r} but has no read_{stream}() method")
    for action in actions:
        if action not in KNOWN_ACTIONS:
            problems.append(f"declares unknown action {action!r} (known: {', '.join(sorted(KNOWN_ACTIONS))})")
        elif not callable(getattr(cls, f"apply_{action}", None)):
            problems.append(f"declares action {action!r} but has no apply_{action}() method")
    batch_limits = getattr(cls, "batch_limits", {})
    for action, limit in batch_limits.items():
        if action not in actions:
            problems.append(f"batch_limits names {action!r}, which it does not declare as an action")
        elif not isinstance(limit, int) or limit < 1:
            problems.append(f"batch_limits[{action!r}] must be a whole number of at least 1, not {limit!r}")
        elif not callable(getattr(cls, f"batch_{action}", None)):
            problems.append(f"batch_limits names {action!r} but it has no batch_{action}() method")
    return problems


def _origin(entry_point: EntryPoint) -> str:
    dist = entry_point.dist
    if dist is None:
        return "unknown"
    return f"{dist.metadata['Name']} {dist.version}"


def _load(entry_point: EntryPoint) -> ProviderInfo:
    info = ProviderInfo(name=entry_point.name, origin=_origin(entry_point), target=entry_point.value)
    try:
        cls = entry_point.load()
    except Exception as exc:  # a partner's import error must not take the product down
        info.problems.append(f"import failed: {type(exc).__name__}: {exc}")
        return info
    info.problems.extend(contract_problems(cls, entry_point.name))
    if not info.problems:
        info.cls = cls
    return info


class Registry:
    """The providers installed in this environment, by name."""

    def __init__(self, infos: list[ProviderInfo]) -> None:
        self.infos = sorted(infos, key=lambda i: i.name)

    @classmethod
    def discover(cls) -> Registry:
        infos: list[ProviderInfo] = []
        targets: set[tuple[str, str]] = set()
        for entry_point in entry_points(group=ENTRY_POINT_GROUP):
            if (entry_point.name, entry_point.value) in targets:
                continue  # the same distribution seen twice on sys.path
            targets.add((entry_point.name, entry_point.value))
            info = _load(entry_point)
            clash = next((i for i in infos if i.name == info.name and i.ok), None)
            if clash is not None:
                info.cls = None
                info.problems.append(f"name {info.name!r} is already provided by {clash.origin}")
            infos.append(info)
        return cls(infos)

    @property
    def available(self) -> list[ProviderInfo]:
        return [i for i in self.infos if i.ok]

    @property
    def broken(self) -> list[ProviderInfo]:
        return [i for i in self.infos if not i.ok]

    def get(self, name: str) -> type[Provider]:
        """The provider class called `name`; an unknown or broken name says what is valid."""
        named = [i for i in self.infos if i.name == name]
        for info in named:
            if info.ok and info.cls is not None:
                return info.cls
        if named:
            raise PluginError(name, "; ".join(named[0].problems))
        valid = ", ".join(i.name for i in self.available) or "none installed"
        raise ConfigError(f"unknown provider {name!r} (installed: {valid})")


@lru_cache(maxsize=1)
def installed() -> Registry:
    """The registry of this process, discovered once."""
    return Registry.discover()
