"""The parts a whole-book link pass cuts the book into (`Components`): views a pass over what
changed would read together are one part; the rest stay apart, so a part is small."""

from __future__ import annotations

from connector.linking.components import Components
from connector.linking.keys import ViewKeys


def parts_of(components: Components) -> set[frozenset[int]]:
    return {frozenset(part) for part in components.parts(1)}


def test_views_sharing_a_key_or_a_record_are_one_part_and_the_others_apart():
    c = Components()
    c.add(1, "inv-a", ViewKeys(shared=frozenset({100})), deal=False)
    c.add(2, "inv-b", ViewKeys(shared=frozenset({100, 200})), deal=False)  # INV-1's number
    c.add(3, "inv-b", ViewKeys(shared=frozenset({300})), deal=False)  # another view of inv-b
    c.add(4, "inv-c", ViewKeys(shared=frozenset({400})), deal=False)
    assert parts_of(c) == {frozenset({1, 2, 3}), frozenset({4})}


def test_a_key_held_toward_the_other_side_joins_deals_and_invoices_never_two_deals():
    c = Components()
    # two deals whose names both give "2": apart while no invoice has that number's digits
    c.add(1, "deal-a", ViewKeys(toward=frozenset({7})), deal=True)
    c.add(2, "deal-b", ViewKeys(toward=frozenset({7})), deal=True)
    c.add(3, "deal-c", ViewKeys(toward=frozenset({8})), deal=True)
    # two invoices ending in the same digits, looked up among the deals only: apart too
    c.add(4, "inv-a", ViewKeys(toward=frozenset({9})), deal=False)
    c.add(5, "inv-b", ViewKeys(toward=frozenset({9})), deal=False)
    assert parts_of(c) == {frozenset({1}), frozenset({2}), frozenset({3}), frozenset({4}), frozenset({5})}

    # an invoice holding 7 (after both deals came) finds both; one holding 8 by its number finds deal-c
    c = Components()
    c.add(1, "deal-a", ViewKeys(toward=frozenset({7})), deal=True)
    c.add(2, "deal-b", ViewKeys(toward=frozenset({7})), deal=True)
    c.add(3, "deal-c", ViewKeys(toward=frozenset({8})), deal=True)
    c.add(4, "inv-a", ViewKeys(toward=frozenset({7})), deal=False)
    c.add(5, "inv-b", ViewKeys(shared=frozenset({8})), deal=False)
    assert parts_of(c) == {frozenset({1, 2, 4}), frozenset({3, 5})}


def test_a_view_named_by_an_explicit_id_is_in_the_part_of_the_views_naming_it():
    c = Components()
    c.add(1, "cus-a", ViewKeys(shared=frozenset({50})), deal=False)  # its hint names view 2
    c.add(2, "cus-b", ViewKeys(), deal=False, own=50)
    c.add(3, "cus-c", ViewKeys(), deal=False, own=60)  # named by nobody
    assert parts_of(c) == {frozenset({1, 2}), frozenset({3})}


def test_parts_are_batched_whole_up_to_the_size_asked():
    c = Components()
    for ref_id in range(1, 8):
        c.add(ref_id, f"inv-{ref_id // 3}", ViewKeys(), deal=False)  # parts {1,2} {3,4,5} {6,7}
    batches = list(c.parts(3))
    assert [sorted(b) for b in batches] == [[1, 2, 3, 4, 5], [6, 7]]
    assert list(c.parts(3)) == [], "the parts are handed over once"
