"""Reversing what we wrote to Xero: a payment deleted (`POST /Payments/{id}` `{"Status":
"DELETED"}`), a fee's spend money transaction set to DELETED; done once, whatever the repeats,
and refused with what to do by hand where Xero will not delete."""

from __future__ import annotations

import json
from collections.abc import Callable
from decimal import Decimal

import httpx
import pytest
import respx

from connector.errors import InvalidRequestError
from connector.http import dumps_exact
from connector.model import Action, ActionKind, ObjectType, Ref
from support.openapi import check_response
from support.xero_fakes import API

PAYMENT_ID = "c94c996b-1ab3-4ff3-ad19-1cdc77f30817"
FEE_ID = "5f8b1b4e-1f0a-4c1e-9b4e-2b7f8e0c1a11"


def reversal(kind: ActionKind, object_type: ObjectType, remote_id: str) -> Action:
    return Action(
        connection="ledger",
        kind=kind,
        target=Ref(system="ledger", object_type=object_type, remote_id=remote_id),
        payload={"reverses": "act-1"},
    )


def delete_payment() -> Action:
    return reversal("delete_payment", "payment", PAYMENT_ID)


def delete_fee() -> Action:
    return reversal("delete_fee", "bank_transaction", FEE_ID)


def envelope(key: str, record: dict) -> httpx.Response:
    body = {"Id": "8a2c3e4f-0000-4000-8000-000000000001", "Status": "OK", "ProviderName": "test", key: [record]}
    return httpx.Response(200, content=dumps_exact(body), headers={"Content-Type": "application/json"})


def validation_error(message: str) -> httpx.Response:
    body = {
        "ErrorNumber": 10,
        "Type": "ValidationException",
        "Message": "A validation exception occurred",
        "Elements": [{"ValidationErrors": [{"Message": message}]}],
    }
    return httpx.Response(400, json=body)


def payment(status: str = "AUTHORISED", **extra) -> dict:
    return {
        "PaymentID": PAYMENT_ID,
        "Date": "/Date(1767139200000+0000)/",
        "Amount": Decimal("749.75"),
        "PaymentType": "ACCRECPAYMENT",
        "Status": status,
        "IsReconciled": False,
        "UpdatedDateUTC": "/Date(1767139200000+0000)/",
        "Invoice": {
            "InvoiceID": "0e64a623-c2a1-446a-93ed-eb897f118cbc",
            "InvoiceNumber": "INV-0042",
            "CurrencyCode": "USD",
        },
        **extra,
    }


def fee(status: str = "AUTHORISED", **extra) -> dict:
    return {
        "BankTransactionID": FEE_ID,
        "Type": "SPEND",
        "Status": status,
        "IsReconciled": False,
        "Reference": "ch_3Fee",
        "CurrencyCode": "KWD",
        "BankAccount": {"AccountID": "6f7594f2-f059-4d56-9e67-47ac9733bfe9", "Code": "615"},
        "LineAmountTypes": "NoTax",
        "LineItems": [
            {
                "LineItemID": "40bec527-a744-4149-96c5-0ab643b51158",
                "Description": "gateway fee on ch_3Fee",
                "Quantity": Decimal("1.0000"),
                "UnitAmount": Decimal("1.2350"),
                "AccountCode": "404",
                "LineAmount": Decimal("1.235"),
            }
        ],
        "Total": Decimal("1.235"),
        **extra,
    }


class Xero:
    """One payment and one fee held by a respx Xero; deletes change them as Xero would."""

    def __init__(self, router: respx.Router) -> None:
        self.held = {"Payments": payment(), "BankTransactions": fee()}
        self.posts: list[httpx.Request] = []
        self.refusal: Callable[[], httpx.Response] | None = None
        for key, ident in (("Payments", PAYMENT_ID), ("BankTransactions", FEE_ID)):
            router.get(f"{API}/{key}/{ident}").mock(side_effect=lambda request, key=key: envelope(key, self.held[key]))
            router.post(f"{API}/{key}/{ident}").mock(side_effect=lambda request, key=key: self._post(request, key))

    def _post(self, request: httpx.Request, key: str) -> httpx.Response:
        self.posts.append(request)
        if self.refusal is not None:
            return self.refusal()
        self.held[key] = {**self.held[key], "Status": "DELETED"}
        return envelope(key, self.held[key])


@pytest.fixture
def xero_held(fake_xero):
    with respx.mock(assert_all_called=False) as router:
        yield Xero(router)


def test_a_payment_is_deleted_with_only_its_status_and_the_idempotency_key(xero_held, make_xero):
    action = delete_payment()
    result = make_xero().apply(action)
    (post,) = xero_held.posts
    assert post.url.path == f"/api.xro/2.0/Payments/{PAYMENT_ID}"
    assert json.loads(post.content) == {"Status": "DELETED"}  # Xero refuses any other field
    assert post.headers["Idempotency-Key"] == action.idempotency_key
    assert result.remote_id == PAYMENT_ID and not result.replayed
    assert result.response["Payments"][0]["Status"] == "DELETED"
    check_response("xero", "POST", f"/Payments/{PAYMENT_ID}", json.loads(dumps_exact(result.response)))


def test_a_payment_deleted_already_is_done_without_sending_anything(xero_held, make_xero):
    xero_held.held["Payments"] = payment("DELETED")
    provider = make_xero()
    first, again = provider.apply(delete_payment()), provider.apply(delete_payment())
    assert xero_held.posts == []
    assert first.replayed and again.replayed and first.remote_id == again.remote_id == PAYMENT_ID


def test_a_repeat_after_a_lost_answer_finds_the_payment_deleted(xero_held, make_xero):
    provider = make_xero()
    first = provider.apply(delete_payment())
    again = provider.apply(delete_payment())  # the outbox retried: Xero holds it deleted
    assert len(xero_held.posts) == 1 and not first.replayed and again.replayed


def test_a_reconciled_payment_is_refused_before_anything_is_sent_saying_what_to_do(xero_held, make_xero):
    xero_held.held["Payments"] = payment(IsReconciled=True)
    with pytest.raises(InvalidRequestError) as refused:
        make_xero().apply(delete_payment())
    message = str(refused.value)
    assert f"payment {PAYMENT_ID} (749.75 USD on invoice INV-0042) is reconciled" in message
    assert "unreconcile it in Xero" in message and "\n" not in message
    assert xero_held.posts == []


def test_a_payment_of_a_batch_payment_is_refused(xero_held, make_xero):
    xero_held.held["Payments"] = payment(BatchPaymentID="b54aa50c-794c-461b-89d1-846e1b84d9c0")
    with pytest.raises(InvalidRequestError, match="batch payment b54aa50c.* by hand"):
        make_xero().apply(delete_payment())
    assert xero_held.posts == []


def test_a_delete_xero_refuses_for_a_locked_period_says_so_and_what_to_do(xero_held, make_xero):
    xero_held.refusal = lambda: validation_error("The payment date cannot be before the period lock date")
    with pytest.raises(InvalidRequestError) as refused:
        make_xero().apply(delete_payment())
    message = str(refused.value)
    assert message.startswith(f"xero: Xero refused to delete payment {PAYMENT_ID}")
    assert "move the lock date in Xero" in message


def test_a_refused_delete_of_a_payment_deleted_meanwhile_is_done(xero_held, make_xero):
    def deleted_by_someone_else() -> httpx.Response:
        xero_held.held["Payments"] = payment("DELETED")
        return validation_error("This payment has been deleted already")

    xero_held.refusal = deleted_by_someone_else
    result = make_xero().apply(delete_payment())
    assert result.replayed and result.remote_id == PAYMENT_ID and len(xero_held.posts) == 1


def test_a_reversal_needs_the_record_it_deletes_as_its_target(xero_held, make_xero):
    wrong = reversal("delete_payment", "invoice", PAYMENT_ID)
    with pytest.raises(InvalidRequestError, match="delete_payment needs the Xero payment it deletes"):
        make_xero().apply(wrong)
    with pytest.raises(InvalidRequestError, match="delete_fee needs the Xero bank_transaction"):
        make_xero().apply(reversal("delete_fee", "payment", "ch_3Fee"))
    assert xero_held.posts == []


def test_a_fee_is_deleted_by_setting_its_spend_money_deleted_with_what_xero_holds(xero_held, make_xero):
    action = delete_fee()
    result = make_xero(payment_account_code="615", fee_account_code="404").apply(action)
    (post,) = xero_held.posts
    assert post.url.path == f"/api.xro/2.0/BankTransactions/{FEE_ID}" and post.url.params["unitdp"] == "4"
    assert post.headers["Idempotency-Key"] == action.idempotency_key
    sent = json.loads(post.content, parse_float=Decimal)["BankTransactions"][0]
    assert sent["Status"] == "DELETED" and sent["BankTransactionID"] == FEE_ID
    assert sent["Type"] == "SPEND" and sent["BankAccount"] == {"AccountID": "6f7594f2-f059-4d56-9e67-47ac9733bfe9"}
    assert sent["LineItems"][0]["UnitAmount"] == Decimal("1.2350")  # unchanged on the way, to the fils
    assert result.remote_id == FEE_ID and not result.replayed
    check_response("xero", "POST", f"/BankTransactions/{FEE_ID}", json.loads(dumps_exact(result.response)))


def test_a_fee_deleted_already_is_done_and_a_reconciled_one_refused(xero_held, make_xero):
    provider = make_xero()
    xero_held.held["BankTransactions"] = fee("DELETED")
    assert provider.apply(delete_fee()).replayed
    xero_held.held["BankTransactions"] = fee(IsReconciled=True)
    with pytest.raises(
        InvalidRequestError, match=r"bank transaction .* \(SPEND, 1.235 KWD, reference ch_3Fee\) is reconciled"
    ):
        provider.apply(delete_fee())
    assert xero_held.posts == []


def test_a_payment_of_another_amount_than_the_reversal_names_is_left_alone(xero_held, make_xero):
    provider = make_xero()
    named = Action(
        connection="ledger",
        kind="delete_payment",
        target=Ref(system="ledger", object_type="payment", remote_id=PAYMENT_ID),
        payload={"reverses": "act-1", "amount": "500.00", "currency": "USD"},
    )
    with pytest.raises(InvalidRequestError, match=r"\(749.75 USD on invoice INV-0042\) is not the 500.00 USD"):
        provider.apply(named)
    assert xero_held.posts == []
    same = named.model_copy(update={"payload": {"reverses": "act-1", "amount": "749.75", "currency": "USD"}})
    assert provider.apply(same).remote_id == PAYMENT_ID
