"""Named places where a crash test may kill the process on purpose.

`CONNECTOR_FAILPOINT=after_send:3` makes the process exit abruptly (as a SIGKILL would leave
it) at the third time it reaches `hit("after_send")`: after a provider answered a write and
before the answer is committed, the moment exactly-once delivery has to survive;
`after_send_<kind>` (e.g. `after_send_create_note:1`) counts only that kind's answers, and a
name ending in `*` counts every place whose name starts so (`after_send_create*:2`).
`page_written` is a sync's page of records and its cursor written, not yet committed.
`token_answered` is an OAuth token endpoint's answer received (the provider has rotated the
refresh token) and not yet saved. Unset, it costs one dictionary lookup.
"""

from __future__ import annotations

import os
import threading

_lock = threading.Lock()
_counts: dict[str, int] = {}


def hit(name: str) -> None:
    spec = os.environ.get("CONNECTOR_FAILPOINT")
    if not spec:
        return
    target, _, count = spec.partition(":")
    if not (name.startswith(target[:-1]) if target.endswith("*") else target == name):
        return
    with _lock:
        _counts[target] = _counts.get(target, 0) + 1
        reached = _counts[target] >= int(count or 1)
    if reached:
        os._exit(137)
