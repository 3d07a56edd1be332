"""How often reconciliation is right, scored against a generated book's ground truth.

    result = score(scenario.truth, store)    # after a sync and `run_reconciliation`
    result.wrong                             # auto-applied allocations the truth does not have
    result.shortfalls()                      # the acceptance figures not met, in words
    print(result.text())                     # per trap kind, and per rule and confidence band

It reads what the store holds (applied allocations, open proposals) and nothing else, so it
scores a run of the CLI, the service or a test alike. The truth is a generated book's: the trap
book (`generate_traps`, whose payments carry `trap` and `expected`) or an ordinary book
(`generate`, whose labels `expected_of` reads from its allocations). Money is compared exactly:
an allocation is right only with the truth's invoice, currency and amount to the minor unit.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from connector.sandbox.generator_traps import ORDINARY, expected_of
from connector.state import reconciliation as decisions
from connector.state.store import Store

# Confidence bands of the rule table, highest first: (lowest confidence in it, label).
BANDS: tuple[tuple[Decimal, str], ...] = (
    (Decimal("0.99"), ">=0.99"),
    (Decimal("0.95"), "0.95-0.99"),
    (Decimal("0.90"), "0.90-0.95"),
    (Decimal(0), "<0.90"),
)
# The acceptance figures (the issue's): none wrong, and these shares at least.
APPLIED_RIGHT = Decimal("0.95")
FIRST_RIGHT = Decimal("0.90")
EXACT_CURRENCIES = ("JPY", "USD", "KWD")

Money = tuple[Decimal, str]  # amount, currency


def band(confidence: Decimal) -> str:
    return next(label for low, label in BANDS if confidence >= low)


@dataclass(frozen=True)
class Outcome:
    """One payment of the truth and what reconciliation made of it (invoices by number)."""

    payment: str
    trap: str
    expected: str
    currency: str
    truth: dict[str, Money]
    applied: dict[str, Money]
    rules: tuple[tuple[str, Decimal], ...]  # (rule, confidence) of the applied allocations
    first: frozenset[str] | None  # the open proposal's first candidate
    first_rule: tuple[str, Decimal] | None

    @property
    def wrong(self) -> bool:
        """An allocation applied by itself to an invoice, or of an amount, the truth does not have."""
        return any(self.truth.get(invoice) != money for invoice, money in self.applied.items())

    @property
    def applied_right(self) -> bool:
        return bool(self.truth) and self.applied == self.truth

    @property
    def for_a_person(self) -> bool:
        """A payment the truth allocates that waits for finance: it has an open proposal, or it
        should have one (`propose`) and got nothing at all, which counts as a wrong first."""
        return bool(self.truth) and (self.first is not None or (self.expected == "propose" and not self.applied))

    @property
    def first_right(self) -> bool:
        return self.first is not None and self.first == frozenset(self.truth)


@dataclass(frozen=True)
class RuleRow:
    rule: str
    band: str
    decision: str  # "applied" or "proposed first"
    count: int
    right: int


@dataclass(frozen=True)
class Score:
    outcomes: tuple[Outcome, ...]

    @property
    def wrong(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.wrong]

    @property
    def to_apply(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.expected == "apply"]

    @property
    def proposed(self) -> list[Outcome]:
        """Payments the truth allocates that wait for finance (`Outcome.for_a_person`)."""
        return [o for o in self.outcomes if o.for_a_person]

    @property
    def exact_currencies(self) -> set[str]:
        return {o.currency for o in self.to_apply if o.applied_right}

    def figures(self) -> dict[str, Any]:
        to_apply, proposed = self.to_apply, self.proposed
        return {
            "payments": len(self.outcomes),
            "wrong": len(self.wrong),
            "to_apply": len(to_apply),
            "applied_right": sum(o.applied_right for o in to_apply),
            "applied_share": _share(sum(o.applied_right for o in to_apply), len(to_apply)),
            "proposed": len(proposed),
            "first_right": sum(o.first_right for o in proposed),
            "first_share": _share(sum(o.first_right for o in proposed), len(proposed)),
            "exact_currencies": sorted(self.exact_currencies),
        }

    def shortfalls(self) -> list[str]:
        """The acceptance figures this run misses, in words (empty: all met)."""
        f, missing = self.figures(), []
        if f["wrong"]:
            missing.append(f"{f['wrong']} payments with a wrong auto-applied allocation")
        if f["to_apply"] and f["applied_share"] < APPLIED_RIGHT:
            missing.append(f"{f['applied_right']}/{f['to_apply']} payments to apply were applied right")
        if f["proposed"] and f["first_share"] < FIRST_RIGHT:
            missing.append(f"{f['first_right']}/{f['proposed']} proposals have the right candidate first")
        absent = [c for c in EXACT_CURRENCIES if c not in self.exact_currencies]
        if absent:
            missing.append("no payment applied exactly in " + ", ".join(absent))
        return missing

    def by_trap(self) -> dict[str, dict[str, int]]:
        """Per trap kind (or scenario, in an ordinary book): what was expected and what happened."""
        rows: dict[str, dict[str, int]] = {}
        for o in self.outcomes:
            row = rows.setdefault(
                o.trap,
                {
                    "payments": 0,
                    "to_apply": 0,
                    "applied_right": 0,
                    "applied": 0,
                    "wrong": 0,
                    "proposed": 0,
                    "first_right": 0,
                },
            )
            row["payments"] += 1
            row["to_apply"] += o.expected == "apply"
            row["applied_right"] += o.expected == "apply" and o.applied_right
            row["applied"] += bool(o.applied)
            row["wrong"] += o.wrong
            row["proposed"] += o.for_a_person
            row["first_right"] += o.for_a_person and o.first_right
        return dict(sorted(rows.items(), key=lambda item: (item[0] == ORDINARY, item[0])))

    def by_rule(self) -> list[RuleRow]:
        """How often each rule, in each confidence band, was right: applied (no allocation the
        truth lacks) and proposed first (the first candidate is the truth's invoices)."""
        counts: dict[tuple[str, str, str], list[int]] = {}
        for o in self.outcomes:
            if o.applied:
                rule = "+".join(sorted({r for r, _ in o.rules}))
                key = (rule, band(min(c for _, c in o.rules)), "applied")
                tally = counts.setdefault(key, [0, 0])
                tally[0] += 1
                tally[1] += not o.wrong
            if o.first_rule is not None and o.truth:
                key = (o.first_rule[0], band(o.first_rule[1]), "proposed first")
                tally = counts.setdefault(key, [0, 0])
                tally[0] += 1
                tally[1] += o.first_right
        order = {label: k for k, (_, label) in enumerate(BANDS)}
        return [
            RuleRow(rule, label, decision, count, right)
            for (rule, label, decision), (count, right) in sorted(
                counts.items(), key=lambda item: (item[0][2], item[0][0], order[item[0][1]])
            )
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "figures": self.figures(),
            "shortfalls": self.shortfalls(),
            "by_trap": self.by_trap(),
            "by_rule": [vars(row) for row in self.by_rule()],
            "wrong": [
                {
                    "payment": o.payment,
                    "trap": o.trap,
                    "truth": _plain(o.truth),
                    "applied": _plain(o.applied),
                    "rules": [f"{r} {c}" for r, c in o.rules],
                }
                for o in self.wrong
            ],
        }

    def text(self) -> str:
        f = self.figures()
        lines = [
            f"payments {f['payments']}; wrong auto-applied {f['wrong']}; "
            f"applied right {f['applied_right']}/{f['to_apply']} ({_percent(f['applied_share'])}); "
            f"right candidate first {f['first_right']}/{f['proposed']} ({_percent(f['first_share'])}); "
            f"exact in {', '.join(f['exact_currencies']) or 'none'}",
            "",
            f"{'trap':<24}{'payments':>9}{'to apply':>9}{'right':>7}{'applied':>8}{'wrong':>7}{'for person':>11}"
            f"{'1st right':>10}",
        ]
        for trap, row in self.by_trap().items():
            lines.append(
                f"{trap:<24}{row['payments']:>9}{row['to_apply']:>9}{row['applied_right']:>7}{row['applied']:>8}"
                f"{row['wrong']:>7}{row['proposed']:>11}{row['first_right']:>10}"
            )
        lines += ["", f"{'rule':<40}{'confidence':>11}{'decision':>16}{'count':>7}{'right':>7}"]
        for r in self.by_rule():
            lines.append(f"{r.rule:<40}{r.band:>11}{r.decision:>16}{r.count:>7}{r.right:>7}")
        return "\n".join(lines)


def merge(scores: Iterable[Score]) -> Score:
    """Several books scored as one (the figures over several seeds)."""
    return Score(tuple(o for s in scores for o in s.outcomes))


def score(truth: dict[str, Any], store: Store) -> Score:
    """What the store's reconciliation made of every payment of `truth`."""
    numbers = {
        canonical: invoice["number"]
        for invoice in truth["invoices"]
        if (canonical := _canonical(store, "ledger", "invoice", invoice["xero_invoice_id"]))
    }
    with store.session() as session:
        applied = decisions.load_allocations(session, status="applied")
        proposals = {p["payment_id"]: p for p in decisions.load_proposals(session)}
    by_payment: dict[str, list[Any]] = {}
    for stored in applied:
        by_payment.setdefault(stored.allocation.payment_id, []).append(stored.allocation)
    outcomes = []
    for payment in truth["payments"]:
        ids = _payment_ids(store, payment)
        got: dict[str, Money] = {}
        rules = []
        for allocation in (a for pid in ids for a in by_payment.get(pid, [])):
            number = numbers.get(allocation.invoice_id, allocation.invoice_id)
            before, _ = got.get(number, (Decimal(0), allocation.amount.currency))
            got[number] = (before + allocation.amount.amount, allocation.amount.currency)
            rules.append((allocation.rule, Decimal(allocation.confidence)))
        proposal = next((proposals[pid] for pid in ids if pid in proposals), None)
        first = proposal["candidates"][0] if proposal and proposal["candidates"] else None
        outcomes.append(
            Outcome(
                payment=payment["id"],
                trap=payment.get("trap") or payment["scenario"],
                expected=expected_of(payment),
                currency=payment["currency"],
                truth={
                    a["invoice_number"]: (Decimal(a["amount"]), a["currency"])
                    for a in payment["allocations"]
                    if Decimal(a["amount"])
                },
                applied=got,
                rules=tuple(rules),
                first=frozenset(numbers.get(i, i) for i in first["invoice_ids"]) if first else None,
                first_rule=(first["rule"], Decimal(first["confidence"])) if first else None,
            )
        )
    return Score(tuple(outcomes))


def _payment_ids(store: Store, payment: dict[str, Any]) -> list[str]:
    """The canonical ids of a truth payment: its Stripe charge and every Xero payment of it."""
    found = (
        [_canonical(store, "gateway", "payment", payment["stripe_charge_id"])] if payment["stripe_charge_id"] else []
    )
    found += [_canonical(store, "ledger", "payment", x) for x in payment["xero_payment_ids"]]
    return list(dict.fromkeys(i for i in found if i))


def _canonical(store: Store, system: str, object_type: str, remote_id: str) -> str | None:
    return store.canonical_ids(system, object_type, [remote_id]).get(remote_id)


def _share(part: int, whole: int) -> Decimal:
    return (Decimal(part) / Decimal(whole)).quantize(Decimal("0.0001")) if whole else Decimal(1)


def _percent(share: Decimal) -> str:
    return f"{share * 100:.1f} %"


def _plain(moneys: dict[str, Money]) -> dict[str, str]:
    return {invoice: f"{amount} {currency}" for invoice, (amount, currency) in moneys.items()}
