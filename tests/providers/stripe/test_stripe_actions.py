import logging
from urllib.parse import parse_qs

import httpx
import pytest

from connector.errors import AuthenticationError, IdempotencyError, InvalidRequestError
from connector.model import Action, Ref
from support.stripe_fakes import API_KEY, fixture

USD = "in_1OBa9zLkdIwHu7ixUSD00001"


def action(kind, invoice_id=USD, **payload):
    return Action(
        connection="gateway",
        kind=kind,
        target=Ref(system="gateway", object_type="invoice", remote_id=invoice_id),
        payload=payload,
    )


def posts(fake):
    return [r for r in fake.requests if r.method == "POST"]


def test_mark_paid_marks_the_invoice_paid_out_of_band_with_the_actions_key(stripe_fake, provider):
    act = action("mark_paid")
    result = provider.apply(act)
    assert result.remote_id == USD and result.response["status"] == "paid" and not result.replayed
    [post] = posts(stripe_fake)
    assert post.url.path == f"/v1/invoices/{USD}/pay"
    assert parse_qs(post.content.decode()) == {"paid_out_of_band": ["true"]}
    assert post.headers["Idempotency-Key"] == act.idempotency_key


def test_mark_paid_twice_pays_once(stripe_fake, provider):
    first = provider.apply(action("mark_paid"))
    second = provider.apply(action("mark_paid"))
    assert stripe_fake.effects[f"pay {USD}"] == 1
    assert second.replayed and second.response["status"] == "paid" and not first.replayed
    assert len(posts(stripe_fake)) == 1  # the second found it paid and sent nothing


def test_a_send_repeated_with_the_same_key_is_replayed_by_stripe(stripe_fake, provider):
    first = provider.apply(action("send_invoice"))
    second = provider.apply(action("send_invoice"))
    assert stripe_fake.effects[f"send {USD}"] == 1
    assert (first.replayed, second.replayed) == (False, True)
    assert second.response == first.response


def test_void_twice_voids_once(stripe_fake, provider):
    provider.apply(action("void_invoice"))
    again = provider.apply(action("void_invoice"))
    assert stripe_fake.effects[f"void {USD}"] == 1 and again.replayed


def test_a_partial_out_of_band_payment_is_refused_not_recorded_in_full(stripe_fake, provider):
    with pytest.raises(InvalidRequestError, match="whole invoice"):
        provider.apply(action("mark_paid", amount="50.00", currency="USD"))
    assert not posts(stripe_fake)


def test_mark_paid_of_the_exact_remaining_amount_goes_through(stripe_fake, provider):
    assert provider.apply(action("mark_paid", amount="144.40", currency="USD")).response["status"] == "paid"


def test_a_key_reused_with_other_parameters_is_an_idempotency_error(stripe_fake, provider):
    stripe_fake.failures.append(
        httpx.Response(400, json=fixture("error_idempotency.json"), headers={"Request-Id": "req_Zz9y"})
    )
    with pytest.raises(IdempotencyError) as caught:
        provider.apply(action("send_invoice"))
    assert caught.value.request_id == "req_Zz9y" and caught.value.http_status == 400


def test_a_write_retried_after_a_500_keeps_its_key(stripe_fake, provider):
    act = action("send_invoice")
    stripe_fake.failures.append(httpx.Response(500, json={"error": {"type": "api_error", "message": "try again"}}))
    result = provider.apply(act)
    sent = posts(stripe_fake)
    assert len(sent) == 2 and {r.headers["Idempotency-Key"] for r in sent} == {act.idempotency_key}
    assert stripe_fake.effects[f"send {USD}"] == 1 and result.response["id"] == USD


def test_an_action_without_an_invoice_target_is_refused(provider):
    act = Action(
        connection="gateway", kind="send_invoice", target=Ref(system="gateway", object_type="payment", remote_id="ch_1")
    )
    with pytest.raises(InvalidRequestError):
        provider.apply(act)


def test_the_api_key_never_reaches_logs_or_errors(stripe_fake, provider, caplog):
    caplog.set_level(logging.DEBUG)
    stripe_fake.failures.append(
        httpx.Response(500, json={"error": {"type": "api_error", "message": f"bad key {API_KEY}"}})
    )
    stripe_fake.failures.append(
        httpx.Response(
            401, json={"error": {"type": "invalid_request_error", "message": f"Invalid API Key provided: {API_KEY}"}}
        )
    )
    with pytest.raises(AuthenticationError) as caught:
        list(provider.read("customers", None))
    assert API_KEY not in str(caught.value) and API_KEY not in caplog.text
    assert API_KEY not in repr(provider.http._auth) and "sk_test_" not in str(provider.settings)
    assert caplog.records  # the retry was logged, masked
