"""Who a token is and what it may see (service.planning.access), and issuing a token's record."""

from __future__ import annotations

from datetime import UTC, datetime

from service.operators.token_store import new_token
from service.planning.access import Access, access_of, parse_issued, token_hash, visible_tenant, visible_view

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_an_issued_token_is_random_256_bits_and_only_its_hash_is_recorded():
    token, record = new_token("acme", "read", "support desk", NOW)
    other, _ = new_token("acme", "read", "", NOW)
    assert token != other and len(token) >= 43  # 32 random bytes, URL-safe base64
    assert record.sha256 == token_hash(token) and token not in str(record.as_dict())
    assert parse_issued(record.as_dict()) == record
    assert record.issuedAt == "2026-12-02T12:00:00Z" and record.id.startswith("tok-")


def test_global_tokens_see_every_tenant_and_tenant_tokens_their_own():
    _, record = new_token("acme", "operate", "", NOW)
    token, read_record = new_token("beta", "read", "", NOW)
    issued = [record, read_record]
    assert access_of("op", "op", "rd", issued) == Access("operate")
    assert access_of("rd", "op", "rd", issued) == Access("read")
    assert access_of(token, "op", "rd", issued) == Access("read", "beta", read_record.id)
    assert access_of("nope", "op", "rd", issued) is None
    # An unset global token matches nothing, not even an empty one.
    assert access_of("", "", "", []) is None
    beta = Access("read", "beta")
    assert beta.sees("beta") and not beta.sees("acme") and not beta.sees(None)
    assert Access("read").sees("acme")
    assert beta.as_dict() == {"scope": "read", "tenant": "beta"} and Access("read").as_dict() == {"scope": "read"}


def test_malformed_records_grant_nothing():
    good = new_token("acme", "read", "", NOW)[1].as_dict()
    for bad in [None, [], {**good, "scope": "admin"}, {**good, "sha256": "short"}, {**good, "tenant": ""}]:
        assert parse_issued(bad) is None


def test_another_tenants_view_is_absent_to_a_tenant_token():
    order_doc = {"order": {"tenant": "acme", "orderId": "o1"}}
    beta, acme = Access("read", "beta"), Access("read", "acme")
    assert visible_view(beta, order_doc, "order", "o1") is None
    assert visible_view(acme, order_doc, "order", "o1") is order_doc
    assert visible_view(Access("read"), order_doc, "order", "o1") is order_doc
    assert visible_view(beta, None, "order", "o1") is None
    assert visible_view(beta, {"orders": [{"tenant": "acme", "orderId": "o1"}]}, "recipe", "r1") is None
    assert visible_view(acme, {"orders": [{"tenant": "acme", "orderId": "o1"}]}, "recipe", "r1") is not None
    assert visible_tenant(beta, "acme") == "beta" and visible_tenant(Access("read"), "acme") == "acme"
    assert visible_tenant(Access("read"), None) is None
