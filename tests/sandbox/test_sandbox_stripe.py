"""The Stripe face: cursors, `created` filters, events, writes, idempotency, auth."""

from __future__ import annotations

import socket

from support.sandbox_books import T0, book, stripe_book
from support.sandbox_harness import effects, running, stripe


def _walk(client, path, **params):
    seen, after = [], None
    while True:
        page = client.get(path, params={**params, **({"starting_after": after} if after else {})}).json()
        seen += [o["id"] for o in page["data"]]
        if not page["has_more"]:
            return seen
        after = page["data"][-1]["id"]


def test_pagination_walks_every_invoice_once_newest_first_and_ends():
    with running({"stripe": stripe_book(invoices=23)}) as sandbox, stripe(sandbox) as client:
        ids = _walk(client, "/v1/invoices", limit=5)
        created = [sandbox.state.stripe["invoices"][i]["created"] for i in ids]
    assert len(ids) == len(set(ids)) == 25
    assert created == sorted(created, reverse=True)
    assert ids.index("in_0003") < ids.index("in_0002"), "a tie on created is ordered by id, descending"


def test_ending_before_pages_towards_newer_objects():
    with running({"stripe": stripe_book(invoices=10)}) as sandbox, stripe(sandbox) as client:
        everything = _walk(client, "/v1/invoices", limit=100)
        page = client.get("/v1/invoices", params={"limit": 2, "ending_before": everything[5]}).json()
    assert [o["id"] for o in page["data"]] == everything[3:5]
    assert page["has_more"] is True


def test_created_filters_bound_the_list():
    with running({"stripe": stripe_book(invoices=6)}) as sandbox, stripe(sandbox) as client:
        gte = _walk(client, "/v1/invoices", **{"created[gte]": T0 + 3600 * 4, "limit": 1})
        lt = _walk(client, "/v1/invoices", **{"created[lt]": T0 + 3600, "limit": 2})
        window = _walk(client, "/v1/invoices", **{"created[gt]": T0, "created[lte]": T0 + 3600 * 2})
    assert gte == ["in_0005", "in_0004"]
    assert set(lt) == {"in_0000", "in_jpy1", "in_kwd1"}
    assert window == ["in_0003", "in_0002", "in_0001", "in_kwd1", "in_jpy1"]


def test_zero_decimal_and_three_decimal_amounts_come_back_in_minor_units():
    with running(book()) as sandbox, stripe(sandbox) as client:
        jpy = client.get("/v1/invoices/in_jpy1").json()
        kwd = client.get("/v1/invoices/in_kwd1").json()
    assert (jpy["currency"], jpy["amount_due"]) == ("jpy", 5000)
    assert (kwd["currency"], kwd["amount_due"]) == ("kwd", 12_340)


def test_paying_out_of_band_reads_as_paid_and_emits_an_event():
    with running(book()) as sandbox, stripe(sandbox) as client:
        client.post("/v1/invoices/in_jpy1/pay", data={"paid_out_of_band": "true"})
        invoice = client.get("/v1/invoices/in_jpy1").json()
        events = client.get("/v1/events", params={"types[]": ["invoice.paid"]}).json()["data"]
        newest = client.get("/v1/events", params={"limit": 1}).json()["data"][0]
    assert (invoice["status"], invoice["paid"], invoice["paid_out_of_band"]) == ("paid", True, True)
    assert (invoice["amount_paid"], invoice["amount_remaining"]) == (5000, 0)
    assert invoice["status_transitions"]["paid_at"] is not None
    assert [e["data"]["object"]["id"] for e in events] == ["in_jpy1"]
    assert newest["type"] == "invoice.paid"


def test_the_same_idempotency_key_replays_the_first_answer_and_applies_once():
    with running(book()) as sandbox, stripe(sandbox) as client:
        first = client.post(
            "/v1/invoices/in_0001/pay", data={"paid_out_of_band": "true"}, headers={"Idempotency-Key": "ar-1"}
        )
        again = client.post(
            "/v1/invoices/in_0001/pay", data={"paid_out_of_band": "true"}, headers={"Idempotency-Key": "ar-1"}
        )
        other = client.post(
            "/v1/invoices/in_0002/pay", data={"paid_out_of_band": "true"}, headers={"Idempotency-Key": "ar-1"}
        )
        paid_events = client.get("/v1/events", params={"type": "invoice.paid"}).json()["data"]
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert other.status_code == 400 and other.json()["error"]["type"] == "idempotency_error"
    assert len(paid_events) == 1
    assert effects(sandbox, "stripe").count("marked invoice in_0001 paid out of band") == 1
    assert effects(sandbox, "stripe")[1] == "replayed"


def test_a_request_cut_off_before_its_body_ends_does_nothing_and_its_key_stays_free():
    """A writer killed while sending: the sandbox, like Stripe, acts on no part of a request,
    so the writer's retry with the same key is the first request under it, not a mismatch."""
    with running(book()) as sandbox, stripe(sandbox) as client:
        host, port = sandbox.url("stripe").split("//")[1].split("/")[0].split(":")
        with socket.create_connection((host, int(port)), timeout=5) as cut:
            cut.sendall(
                b"POST /stripe/v1/invoices/in_0001/pay HTTP/1.1\r\nHost: sandbox\r\n"
                b"Authorization: Bearer sk_test_sandbox\r\nIdempotency-Key: ar-cut\r\n"
                b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 21\r\n\r\npaid_out"
            )
            cut.shutdown(socket.SHUT_WR)
            assert cut.recv(1024) == b""  # closed without an answer
        retry = client.post(
            "/v1/invoices/in_0001/pay", data={"paid_out_of_band": "true"}, headers={"Idempotency-Key": "ar-cut"}
        )
    assert retry.status_code == 200 and "Idempotent-Replayed" not in retry.headers
    assert effects(sandbox, "stripe").count("marked invoice in_0001 paid out of band") == 1


def test_an_error_answer_is_replayed_too():
    with running(book()) as sandbox, stripe(sandbox) as client:
        client.post("/v1/invoices/in_0001/void")
        first = client.post(
            "/v1/invoices/in_0001/pay", data={"paid_out_of_band": "true"}, headers={"Idempotency-Key": "k"}
        )
        again = client.post(
            "/v1/invoices/in_0001/pay", data={"paid_out_of_band": "true"}, headers={"Idempotency-Key": "k"}
        )
    assert first.status_code == again.status_code == 400
    assert again.headers["Idempotent-Replayed"] == "true"


def test_requests_without_a_key_are_refused():
    with running(book()) as sandbox:
        import httpx

        bare = httpx.get(f"{sandbox.url('stripe')}/v1/invoices")
        with stripe(sandbox, key="sk_test_other") as client:
            ok = client.get("/v1/invoices")
    assert bare.status_code == 401 and bare.json()["error"]["type"] == "invalid_request_error"
    assert bare.headers["Request-Id"].startswith("req_")
    assert ok.status_code == 200


def test_named_keys_are_the_only_ones_accepted():
    data = {**book(), "credentials": {"stripe": ["sk_test_good"]}}
    with (
        running(data) as sandbox,
        stripe(sandbox, key="sk_test_good") as good,
        stripe(sandbox, key="sk_test_bad") as bad,
    ):
        assert good.get("/v1/customers").status_code == 200
        assert bad.get("/v1/customers").status_code == 401


def test_events_filter_by_type_wildcard():
    with running(book()) as sandbox, stripe(sandbox) as client:
        invoice_events = client.get("/v1/events", params={"type": "invoice.*"}).json()["data"]
        customer_events = client.get("/v1/events", params={"types[]": ["customer.created", "customer.updated"]}).json()[
            "data"
        ]
    assert [e["type"] for e in invoice_events] == ["invoice.created"]
    assert [e["type"] for e in customer_events] == ["customer.created"]
