"""Payment reconciliation: which payment pays which invoice, and why.

The rules are pure (records in, decisions out, no I/O): `matcher` and the modules it uses,
exported here. `run` reads what is stored, runs them and stores the decisions; `decisions` is
what finance decides by hand (accept, reject, match, unmatch). See docs/reconciliation.md for
the rules, their confidences and the invariants.
"""

from connector.errors import ReconcileInvariantError
from connector.reconcile.matcher import reconcile
from connector.reconcile.remittance import Mention, NumberIndex, Period, mentions, number_keys, periods
from connector.reconcile.reversals import find_reversals
from connector.reconcile.types import (
    LEDGER_RULE,
    MANUAL_RULE,
    RULES,
    Candidate,
    Proposal,
    ReconcileResult,
    Reversal,
    RuleName,
)
from connector.settings import Confidences, ReconcileConfig

__all__ = [
    "LEDGER_RULE",
    "MANUAL_RULE",
    "RULES",
    "Candidate",
    "Confidences",
    "Mention",
    "NumberIndex",
    "Period",
    "Proposal",
    "ReconcileConfig",
    "ReconcileInvariantError",
    "ReconcileResult",
    "Reversal",
    "RuleName",
    "find_reversals",
    "mentions",
    "number_keys",
    "periods",
    "reconcile",
]
