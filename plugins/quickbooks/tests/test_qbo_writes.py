"""Writes, 429 and tokens: record_payment and send_invoice with `requestid` replayed once,
QuickBooks' 60-second wait on 429, and a refresh that rotates the refresh token."""

from __future__ import annotations

import json
from decimal import Decimal

import httpx
import pytest
import respx
from qbo_support import COMPANY, TOKEN_URL, Store, answer, invoice, provider

from connector.plugin import Action, AuthenticationError, InvalidRequestError, Ref


def _action(kind="record_payment", amount="100.00", currency="USD", remote="130"):
    payload = {"amount": amount, "currency": currency, "date": "2024-05-31", "reference": "ch_3PqrStuVwxyz0123456789"}
    return Action(
        connection="ledger",
        kind=kind,
        target=Ref(system="ledger", object_type="invoice", remote_id=remote),
        payload=payload if kind == "record_payment" else {},
    )


def _created(request: httpx.Request) -> httpx.Response:
    body = json.loads(request.content)
    return answer(
        {"Payment": {**body, "Id": "501", "SyncToken": "0", "CurrencyRef": {"value": body["CurrencyRef"]["value"]}}}
    )


def test_record_payment_links_the_invoice_with_requestid():
    action = _action()
    with respx.mock() as mock:
        get = mock.get(f"{COMPANY}/invoice/130").mock(return_value=answer({"Invoice": invoice()}))
        post = mock.post(f"{COMPANY}/payment").mock(side_effect=_created)
        result = provider(payment_account_id="35").apply(action)
    assert get.called and result.remote_id == "501"
    request = post.calls[0].request
    assert request.url.params["requestid"] == action.idempotency_key and len(action.idempotency_key) == 43
    assert request.url.params["minorversion"] == "75"
    body = json.loads(request.content, parse_float=Decimal)
    assert body["CustomerRef"] == {"value": "24"}  # from the invoice
    assert body["TotalAmt"] == Decimal("100.00") and b'"TotalAmt":100.00' in request.content
    assert body["Line"] == [{"Amount": Decimal("100.00"), "LinkedTxn": [{"TxnId": "130", "TxnType": "Invoice"}]}]
    assert body["DepositToAccountRef"] == {"value": "35"}
    assert body["PaymentRefNum"] == "ch_3PqrStuVwxyz012345" and body["PrivateNote"] == "ch_3PqrStuVwxyz0123456789"


def test_zero_and_three_decimal_amounts_go_out_exactly():
    for currency, amount in (("JPY", "5000"), ("KWD", "12.345")):
        with respx.mock() as mock:
            mock.get(f"{COMPANY}/invoice/130").mock(
                return_value=answer({"Invoice": {**invoice(), "CurrencyRef": {"value": currency}}})
            )
            post = mock.post(f"{COMPANY}/payment").mock(side_effect=_created)
            provider().apply(_action(amount=amount, currency=currency))
        assert f'"TotalAmt":{amount},'.encode() in post.calls[0].request.content


def test_a_payment_sent_twice_has_one_effect():
    """QuickBooks answers a repeated requestid with its first answer: one payment."""
    action = _action()
    created: dict[str, httpx.Response] = {}

    def once(request: httpx.Request) -> httpx.Response:
        key = request.url.params["requestid"]
        created.setdefault(key, _created(request))
        return created[key]

    with respx.mock() as mock:
        mock.get(f"{COMPANY}/invoice/130").mock(return_value=answer({"Invoice": invoice()}))
        post = mock.post(f"{COMPANY}/payment").mock(side_effect=once)
        p = provider()
        first, second = p.apply(action), p.apply(action)
    assert first.remote_id == second.remote_id == "501"
    assert len(created) == 1 and {c.request.url.params["requestid"] for c in post.calls} == {action.idempotency_key}


def test_payment_in_another_currency_is_refused_before_sending():
    with respx.mock(assert_all_called=False) as mock:
        mock.get(f"{COMPANY}/invoice/130").mock(
            return_value=answer({"Invoice": {**invoice(), "CurrencyRef": {"value": "EUR"}}})
        )
        post = mock.post(f"{COMPANY}/payment")
        with pytest.raises(InvalidRequestError, match="EUR"):
            provider().apply(_action())
    assert not post.called


def test_a_fault_answer_is_refused():
    fault = {
        "Fault": {
            "Error": [
                {"Message": "A business validation error has occurred", "Detail": "exceeds balance", "code": "6000"}
            ],
            "type": "ValidationFault",
        }
    }
    with respx.mock() as mock:
        mock.get(f"{COMPANY}/invoice/130").mock(return_value=answer({"Invoice": invoice()}))
        mock.post(f"{COMPANY}/payment").mock(return_value=answer(fault, 400))
        with pytest.raises(InvalidRequestError, match="6000|validation"):
            provider().apply(_action())


def test_send_invoice_with_requestid_replayed_once():
    action = _action("send_invoice")
    with respx.mock() as mock:
        send = mock.post(f"{COMPANY}/invoice/130/send").mock(
            return_value=answer({"Invoice": {**invoice(), "EmailStatus": "EmailSent"}})
        )
        p = provider()
        results = [p.apply(action), p.apply(action)]
    assert [r.remote_id for r in results] == ["130", "130"]
    assert {c.request.url.params["requestid"] for c in send.calls} == {action.idempotency_key}


def test_429_waits_60_seconds():
    sleeps: list[float] = []
    throttled = answer(
        {"Fault": {"Error": [{"Message": "ThrottleExceeded", "code": "003001"}], "type": "SERVICE"}}, 429
    )
    with respx.mock() as mock:
        mock.get(f"{COMPANY}/invoice/130").mock(side_effect=[throttled, answer({"Invoice": invoice()})])
        mock.post(f"{COMPANY}/payment").mock(side_effect=_created)
        qbo = provider(sleeps)
        paused = _paused_by_hand(qbo)
        qbo.apply(_action())
    assert sleeps == [60.0]
    assert 0 < sum(paused) <= 60.0  # the realm's pause overlaps the retry's own wait, never adds a second minute


def _paused_by_hand(qbo) -> list[float]:
    """The limiter's account-wide pause after a 429, on a clock its naps advance (no real minute)."""
    now, naps = [1_000.0], []

    def nap(seconds: float) -> None:
        naps.append(seconds)
        now[0] += seconds

    qbo.http.rate_limiter._clock = lambda: now[0]
    qbo.http.rate_limiter._sleep = nap
    return naps


def test_401_refreshes_once_and_saves_the_rotated_token_first():
    store = Store()
    tokens = {
        "access_token": "eyJaccess-token-two",
        "refresh_token": "AB11refresh-token-two",
        "expires_in": 3600,
        "x_refresh_token_expires_in": 8726400,
        "token_type": "bearer",
    }
    with respx.mock() as mock:
        grant = mock.post(TOKEN_URL).mock(return_value=httpx.Response(200, json=tokens))
        read = mock.get(f"{COMPANY}/invoice/130").mock(
            side_effect=[
                answer(
                    {
                        "fault": {
                            "error": [
                                {
                                    "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401",
                                    "code": "3200",
                                }
                            ],
                            "type": "AUTHENTICATION",
                        }
                    },
                    401,
                ),
                answer({"Invoice": invoice()}),
            ]
        )
        mock.post(f"{COMPANY}/payment").mock(side_effect=_created)
        provider(store=store).apply(_action())
    assert grant.call_count == 1
    form = grant.calls[0].request.content.decode()
    assert "grant_type=refresh_token" in form and "refresh_token=AB11refresh-token-one" in form
    assert grant.calls[0].request.headers["Authorization"].startswith("Basic ")  # client_auth="basic"
    assert store.saved[-1]["refresh_token"] == "AB11refresh-token-two"
    assert read.calls[1].request.headers["Authorization"] == "Bearer eyJaccess-token-two"


def test_refused_refresh_token_says_reauthorise():
    with respx.mock() as mock:
        mock.post(TOKEN_URL).mock(return_value=httpx.Response(400, json={"error": "invalid_grant"}))
        mock.get(f"{COMPANY}/invoice/130").mock(return_value=answer({"fault": {}}, 401))
        with pytest.raises(AuthenticationError, match="re-authorise"):
            provider().apply(_action())


def test_secrets_stay_out_of_repr():
    p = provider()
    text = repr(p.settings) + repr(p) + repr(p.auth) + repr(p.http)
    for secret in ("qbo-client-secret-value", "AB11refresh-token-one", "eyJaccess-token-one"):
        assert secret not in text
