"""Named places where a crash test may kill the process on purpose.

`CONNECTOR_FAILPOINT=after_send:3` makes the process exit abruptly (as a SIGKILL would leave
it) at the third time it reaches `hit("after_send")`: after a provider answered a write and
before the answer is committed, the moment exactly-once delivery has to survive.
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
    if target != name:
        return
    with _lock:
        _counts[name] = _counts.get(name, 0) + 1
        reached = _counts[name] >= int(count or 1)
    if reached:
        os._exit(137)
