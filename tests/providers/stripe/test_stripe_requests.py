"""Every request the adapter makes is held against the Stripe document's parameter lists.

The `stripe_fake` fixture checks the requests of every test that uses it (conftest); this
file drives every stream (full pull, resumed list, events catch-up) and every action in one
place, and shows that an undocumented parameter fails with its name and operation."""

import httpx
import pytest

from connector.model import Action, Ref
from connector.providers.stripe import StripeProvider
from connector.providers.stripe.cursor import encode
from support.stripe_contract import assert_documented, operation_path, problems
from support.stripe_fakes import NOW, make_provider

USD = "in_1OBa9zLkdIwHu7ixUSD00001"


@pytest.mark.parametrize("windows", [1, 8])
def test_every_stream_and_action_sends_only_documented_parameters(stripe_fake, windows):
    provider = make_provider(page_size=2, full_pull_windows=windows)
    for stream in StripeProvider.streams:
        pages = list(provider.read(stream, None))
        list(provider.read(stream, pages[-1].cursor))  # events (or created) catch-up
    list(provider.read("invoices", encode({"events": {"since": NOW - 86400}})))
    for kind in ("send_invoice", "mark_paid", "void_invoice"):
        provider.apply(
            Action(connection="gateway", kind=kind, target=Ref(system="gateway", object_type="invoice", remote_id=USD))
        )
    paths = {r.url.path for r in stripe_fake.requests}
    assert {"/v1/events", "/v1/payment_intents", f"/v1/invoices/{USD}/pay"} <= paths
    assert any("types[]" in r.url.params for r in stripe_fake.requests)
    assert any("created[lt]" in r.url.params for r in stripe_fake.requests) == (windows > 1)
    assert_documented(stripe_fake.requests)  # and again at teardown


def test_paths_match_the_most_literal_template():
    assert operation_path(f"/v1/invoices/{USD}/pay") == "/v1/invoices/{invoice}/pay"
    assert operation_path("/v1/invoices/upcoming") == "/v1/invoices/upcoming"
    assert operation_path("/v1/nothing_here") is None


def test_an_undocumented_query_parameter_fails_with_its_name_and_operation():
    request = httpx.Request("GET", "https://api.stripe.com/v1/credit_notes", params={"created[gte]": 1, "limit": 10})
    [problem] = problems(request)
    assert "'created[gte]'" in problem and "GET /v1/credit_notes" in problem
    with pytest.raises(AssertionError, match="GET /v1/credit_notes"):
        assert_documented([request])


def test_an_unknown_key_of_an_object_parameter_fails():
    request = httpx.Request("GET", "https://api.stripe.com/v1/charges", params={"created[after]": 1})
    assert "no key 'after'" in problems(request)[0]


def test_an_undocumented_form_field_fails_with_its_name_and_operation():
    request = httpx.Request(
        "POST",
        f"https://api.stripe.com/v1/invoices/{USD}/pay",
        data={"paid_out_of_band": "true", "amount_paid_off_stripe": "100"},
    )
    [problem] = problems(request)
    assert "'amount_paid_off_stripe'" in problem and "POST /v1/invoices/{invoice}/pay" in problem
