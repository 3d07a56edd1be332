"""The shortcuts the matcher takes for speed give exactly what the slow, validated way gives."""

from __future__ import annotations

import random
import re
from decimal import Decimal

from connector.model import Allocation
from connector.money import Money
from connector.reconcile import Candidate, Proposal, ReconcileResult, number_keys
from connector.reconcile.book import money
from connector.unchecked import builder


def _slow_keys(number: str) -> tuple[str, str | None]:
    def key(parts: list[str]) -> str:
        return "|".join([p.lstrip("0") or "0" if p.isdigit() else p.upper() for p in parts])

    parts = re.findall(r"[^\W\d_]+|\d+", number)
    digits = [p for p in parts if p.isdigit()]
    return key(parts), (key(digits) if digits else None)


def test_number_keys_fast_path_equals_the_general_reading():
    rng = random.Random(3)
    alphabet = "aZ09 -#./_(x٤²"
    samples = ["INV-0042", "0042", "inv 42", "000", "A", "INV0042", "#42", "  42", "-42", "PO 7781", "ACME-007"]
    samples += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))) for _ in range(3000)]
    for number in samples:
        assert number_keys(number) == _slow_keys(number), number


def test_built_models_equal_validated_ones():
    amount = money(12345, "USD")
    assert amount == Money.of("123.45", "USD")
    assert amount.model_dump() == Money.of("123.45", "USD").model_dump()
    assert money(7, "KWD") == Money.from_minor(7, "KWD") and money(500, "JPY") == Money.of(500, "JPY")

    build = builder(Allocation, "payment_id", "invoice_id", "amount", "rule", "confidence", "reason")
    built = build("p1", "i1", amount, "exact_amount_unique", Decimal("0.95"), "why")
    validated = Allocation(
        payment_id="p1",
        invoice_id="i1",
        amount=amount,
        rule="exact_amount_unique",
        confidence=Decimal("0.95"),
        reason="why",
    )
    assert built == validated
    assert built.model_dump_json() == validated.model_dump_json()
    assert built.model_fields_set == validated.model_fields_set
    built.confirmed_by = "ana"  # validate_assignment still works on a built model
    assert built.confirmed_by == "ana" and validated.confirmed_by is None

    candidate = builder(Candidate, "invoice_ids", "amounts", "rule", "confidence", "reason")(
        ("i1",), (amount,), "subset_sum", Decimal("0.9"), "why"
    )
    assert candidate == Candidate(
        invoice_ids=("i1",), amounts=(amount,), rule="subset_sum", confidence=Decimal("0.9"), reason="why"
    )
    proposal = builder(Proposal, "payment_id", "amount", "candidates")("p1", amount, (candidate,))
    assert proposal == Proposal(payment_id="p1", amount=amount, candidates=(candidate,))
    result = builder(ReconcileResult, "applied", "proposals", "unapplied", "reversals", "unmatched")(
        [validated], [proposal], {"p1": amount}, [], []
    )
    expected = ReconcileResult(
        applied=[validated], proposals=[proposal], unapplied={"p1": amount}, reversals=[], unmatched=[]
    )
    assert result == expected and result.model_dump_json() == expected.model_dump_json()
