"""Payment reconciliation as pure functions: records in, decisions out, no I/O.

See docs/reconciliation.md for the rules, their confidences and the invariants.
"""

from connector.reconcile.matcher import reconcile
from connector.reconcile.remittance import Mention, NumberIndex, mentions, number_keys
from connector.reconcile.reversals import find_reversals
from connector.reconcile.types import (
    MANUAL_RULE,
    RULES,
    Candidate,
    Confidences,
    Proposal,
    ReconcileConfig,
    ReconcileInvariantError,
    ReconcileResult,
    Reversal,
    RuleName,
)

__all__ = [
    "MANUAL_RULE",
    "RULES",
    "Candidate",
    "Confidences",
    "Mention",
    "NumberIndex",
    "Proposal",
    "ReconcileConfig",
    "ReconcileInvariantError",
    "ReconcileResult",
    "Reversal",
    "RuleName",
    "find_reversals",
    "mentions",
    "number_keys",
    "reconcile",
]
