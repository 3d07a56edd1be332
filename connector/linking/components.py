"""The parts of a book that link apart: views joined by what a link pass over what changed
would read together (`connector.linking.run._neighbourhood`), so that linking each part on its
own gives the links of linking them all at once, and a pass over the whole book holds one part
at a time instead of every view of a kind (the large book's 333,000 invoice views held 600 MiB).

Two views are in one part when they are views of the same record, or when one would find the
other by a key (`connector.linking.keys`):
- a key some view holds in `shared` (or the key naming a view, `own_key`, which the views whose
  explicit-id hints name it hold): every view holding it is found by that one;
- a key held in `toward` only: a deal's finds the other views holding it that are not deals,
  and theirs find the deals; so all its holders are one part when a deal and a view that is
  not a deal hold it, and none is joined by it otherwise (the deals whose names all give
  "LLC 2" stay apart until an invoice has that number).
A part is closed: no view outside it would be read with any view inside it, so the rules weigh
the same views whichever way the book is cut. Pure: ref ids and keys in, parts out.
"""

from __future__ import annotations

from collections.abc import Iterable

from connector.linking.keys import ViewKeys

_SHARED, _DEAL, _OTHER = 1, 2, 4
_FLAG_BITS, _FLAG_MASK = 3, 7  # `_holders`' values: the key's first holder, then these flags


def _joins(flags: int) -> bool:
    """Whether a key with holders of these `flags` joins them all."""
    return bool(flags & _SHARED) or flags & (_DEAL | _OTHER) == _DEAL | _OTHER


class Components:
    """Views added one at a time (`add`), the parts they form read at the end (`parts`). What
    it holds: a parent for each view, and for each key its first holder and flags (and, while
    the key joins none of them, its other holders)."""

    def __init__(self) -> None:
        self._parent: dict[int, int] = {}
        self._records: dict[str, int] = {}
        self._holders: dict[int, int] = {}  # key -> first holder << _FLAG_BITS | flags
        self._waiting: dict[int, list[int]] = {}  # key joining none yet -> its holders after the first

    def add(self, ref_id: int, record: str, keys: ViewKeys, *, deal: bool, own: int | None = None) -> None:
        """A view: its ref id, its record's canonical id, its keys, whether it is a deal, and the
        key the views naming it hold (`own_key`; None where nothing can name it)."""
        self._parent.setdefault(ref_id, ref_id)
        first = self._records.setdefault(record, ref_id)
        if first != ref_id:
            self._union(first, ref_id)
        side = _DEAL if deal else _OTHER
        for key in keys.shared:
            self._hold(key, ref_id, _SHARED | side)
        if own is not None:
            self._hold(own, ref_id, _SHARED | side)
        for key in keys.toward:
            self._hold(key, ref_id, side)

    def _hold(self, key: int, ref_id: int, flags: int) -> None:
        found = self._holders.get(key)
        if found is None:
            self._holders[key] = ref_id << _FLAG_BITS | flags
            return
        first, before = found >> _FLAG_BITS, found & _FLAG_MASK
        now = before | flags
        if now != before:
            self._holders[key] = first << _FLAG_BITS | now
        if first == ref_id:
            return
        if not _joins(now):
            self._waiting.setdefault(key, []).append(ref_id)
            return
        self._union(first, ref_id)
        for other in self._waiting.pop(key, ()):
            self._union(first, other)

    def _find(self, ref_id: int) -> int:
        parent = self._parent
        while (up := parent[ref_id]) != ref_id:
            parent[ref_id] = parent[up]  # halve the path
            ref_id = up
        return ref_id

    def _union(self, a: int, b: int) -> None:
        a, b = self._find(a), self._find(b)
        if a != b:
            self._parent[max(a, b)] = min(a, b)

    def parts(self, size: int) -> Iterable[list[int]]:
        """The views' ref ids, a batch of whole parts at a time: parts are put together until a
        batch holds `size` views or more (a part larger than `size` is a batch of its own).
        What the parts were built from is let go first."""
        self._holders.clear()
        self._waiting.clear()
        self._records.clear()
        parts: dict[int, list[int]] = {}
        for ref_id in self._parent:
            parts.setdefault(self._find(ref_id), []).append(ref_id)
        self._parent.clear()
        batch: list[int] = []
        for root in sorted(parts):
            batch += parts.pop(root)
            if len(batch) >= size:
                yield batch
                batch = []
        if batch:
            yield batch
