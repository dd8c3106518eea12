import json

import orjson
import pytest
from cryptography.fernet import Fernet
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from service.settings import Settings
from service.validation import INTEGRATION, ORDER, RECIPE, TRIGGER, Rejected, integration_reasons, parse_event
from tests.events import EXAMPLES, example

SCHEMAS = Settings().schemas_dir
KINDS = {"recipe": RECIPE, "order": ORDER, "integration": INTEGRATION, "trigger": TRIGGER}


def parse(kind, doc_or_bytes, key=None):
    raw = doc_or_bytes if isinstance(doc_or_bytes, bytes) else orjson.dumps(doc_or_bytes)
    if key is None and isinstance(doc_or_bytes, dict):
        key = str(doc_or_bytes.get(kind.key_field(doc_or_bytes), "")).encode()
    return parse_event(kind, key, raw, schemas_dir=SCHEMAS, max_bytes=100_000)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_every_example_validates_against_its_schema_and_its_model(path):
    kind = KINDS[path.name.split("-")[0]]
    doc = orjson.loads(path.read_bytes())
    Draft202012Validator.check_schema(orjson.loads((SCHEMAS / kind.schema_file).read_bytes()))
    event = parse(kind, doc)
    assert not isinstance(event, Rejected), event
    # The typed model keeps what the schema defines, unchanged.
    dumped = event.model_dump(mode="json", exclude_unset=True)
    for field, value in doc.items():
        if field not in ("occurredAt", "requestedAt"):
            assert dumped[field] == value


def test_unknown_fields_are_kept_and_ignored():
    doc = {**example("recipe-created.json"), "futureField": {"x": 1}}
    assert parse(RECIPE, doc).model_extra == {"futureField": {"x": 1}}


@pytest.mark.parametrize(
    ("raw", "key", "reason"),
    [
        (b"\xff\xfe", b"k", "not UTF-8"),
        (b"{not json", b"k", "not JSON"),
        (b"[1, 2]", b"k", "expected an object"),
        (
            orjson.dumps({**example("recipe-created.json"), "type": "recipe.deleted"}),
            b"999-63CHGJokGoxPfSba",
            "type",
        ),
        (orjson.dumps(example("recipe-created.json")), b"other-id", "differs from recipeId"),
        (orjson.dumps(example("recipe-created.json")), None, "no key"),
        (b"{" + b" " * 200_000 + b"}", b"k", "more than the limit"),
    ],
)
def test_malformed_messages_are_rejected_with_a_reason(raw, key, reason):
    result = parse_event(RECIPE, key, raw, schemas_dir=SCHEMAS, max_bytes=100_000)
    assert isinstance(result, Rejected)
    assert any(reason in r for r in result.reasons), result.reasons


def test_reasons_name_the_field():
    doc = example("order-created.json")
    doc["lineItems"][0]["itemQuantity"] = -1
    result = parse(ORDER, doc)
    assert isinstance(result, Rejected)
    assert any(r.startswith("lineItems[0].itemQuantity") for r in result.reasons)


def test_an_integrations_rate_limits_are_positive_and_absent_by_default():
    plain = parse(INTEGRATION, example("integration-local.json"))
    assert (plain.maxPerSecond, plain.maxConcurrent) == (None, None)
    limited = parse(INTEGRATION, {**example("integration-local.json"), "maxPerSecond": 0.5, "maxConcurrent": 3})
    assert (limited.maxPerSecond, limited.maxConcurrent) == (0.5, 3)
    refusals = {
        "maxPerSecond: 0 is less than or equal to the minimum of 0": {"maxPerSecond": 0},
        "maxPerSecond: -5 is less than or equal to the minimum of 0": {"maxPerSecond": -5},
        "maxPerSecond: '5' is not of type 'number', 'null'": {"maxPerSecond": "5"},
        "maxPerSecond: 5000 is greater than the maximum of 1000": {"maxPerSecond": 5000},
        "maxConcurrent: 0 is less than the minimum of 1": {"maxConcurrent": 0},
        "maxConcurrent: 1.5 is not of type 'integer', 'null'": {"maxConcurrent": 1.5},
    }
    for reason, field in refusals.items():
        assert parse(INTEGRATION, {**example("integration-local.json"), **field}).reasons == [reason]
    # What `integrations put` publishes for a configuration without limits (null) is taken by the worker.
    stored = orjson.dumps(plain.model_dump(mode="json"))
    again = parse_event(INTEGRATION, plain.id.encode(), stored, schemas_dir=SCHEMAS, max_bytes=100_000)
    assert (again.maxPerSecond, again.maxConcurrent) == (None, None)


def test_an_integrations_preflight_mode_is_one_of_three_and_strict_when_absent():
    assert parse(INTEGRATION, example("integration-local.json")).preflight == "strict"
    assert parse(INTEGRATION, {**example("integration-local.json"), "preflight": "off"}).preflight == "off"
    refused = parse(INTEGRATION, {**example("integration-local.json"), "preflight": "lenient"})
    assert refused.reasons == ["preflight: 'lenient' is not one of ['strict', 'basic', 'off']"]


def test_deliver_within_minutes_is_a_positive_number_of_minutes_and_unset_by_default():
    assert parse(INTEGRATION, example("integration-zapier.json")).deliverWithinMinutes is None
    assert (
        parse(INTEGRATION, {**example("integration-zapier.json"), "deliverWithinMinutes": None}).deliverWithinMinutes
        is None
    )
    assert (
        parse(INTEGRATION, {**example("integration-zapier.json"), "deliverWithinMinutes": 0.05}).deliverWithinMinutes
        == 0.05
    )
    assert (
        parse(INTEGRATION, {**example("integration-zapier.json"), "deliverWithinMinutes": 60}).deliverWithinMinutes
        == 60
    )
    for bad in (0, -5, 10081, "60", True):
        refused = parse(INTEGRATION, {**example("integration-zapier.json"), "deliverWithinMinutes": bad})
        assert isinstance(refused, Rejected) and refused.reasons[0].startswith("deliverWithinMinutes: "), refused


def test_a_configuration_without_a_delivery_time_is_published_without_one():
    from service.operators.integration_store import sealed
    from service.secrets import SecretBox

    box = SecretBox(Fernet.generate_key().decode())
    unset = orjson.loads(sealed(parse(INTEGRATION, example("integration-local.json")), box))
    assert "deliverWithinMinutes" not in unset
    doc = {**example("integration-local.json"), "deliverWithinMinutes": 30}
    assert orjson.loads(sealed(parse(INTEGRATION, doc), box))["deliverWithinMinutes"] == 30


def test_trigger_must_name_exactly_one_target():
    doc = {**example("trigger-recipe.json"), "orderId": "123"}
    assert parse(TRIGGER, doc).reasons == ["(document): name exactly one of recipeId, orderId or orderNumber"]


def test_integration_rules_beyond_the_schema():
    config = parse(
        INTEGRATION, {**example("integration-zapier.json"), "failureNotificationList": "ops@x.example, nope"}
    )
    reasons = integration_reasons(config, stored=False, allow_http_hooks=False)
    assert reasons == ["failureNotificationList: 'nope' is not an e-mail address"]
    http = example("integration-zapier.json")
    http["settings"]["hook-url"] = "http://hooks.example/x"
    assert "settings.hook-url" in integration_reasons(parse(INTEGRATION, http), stored=False, allow_http_hooks=False)[0]
    assert integration_reasons(parse(INTEGRATION, http), stored=False, allow_http_hooks=True) == []
    # On the topic, secrets must be encrypted.
    stored = integration_reasons(
        parse(INTEGRATION, example("integration-s3.json")), stored=True, allow_http_hooks=False
    )
    assert any("plain text" in r for r in stored)


def test_a_refused_secret_is_not_echoed_in_the_reasons():
    doc = example("integration-s3.json")
    doc["settings"]["secret-key-secret"] = 12345678
    result = parse(INTEGRATION, doc)
    assert isinstance(result, Rejected)
    assert not any("12345678" in r for r in result.reasons)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6),
    max_leaves=20,
)


def dumps(value):
    return json.dumps(value).encode()


def mutated(base):
    keys = list(base)
    return st.one_of(
        st.binary(max_size=200),
        json_values.map(dumps),
        st.builds(lambda k, v: dumps({**base, k: v}), st.sampled_from(keys), json_values),
        st.builds(lambda k: dumps({x: y for x, y in base.items() if x != k}), st.sampled_from(keys)),
    )


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(KINDS)), st.data())
def test_generated_malformed_events_get_reasons_never_an_exception(kind_name, data):
    kind = KINDS[kind_name]
    base = example(
        {
            "recipe": "recipe-created.json",
            "order": "order-created.json",
            "integration": "integration-s3.json",
            "trigger": "trigger-recipe.json",
        }[kind_name]
    )
    raw = data.draw(mutated(base))
    key = data.draw(st.one_of(st.none(), st.binary(max_size=30), st.just(str(base[kind.key_field(base)]).encode())))
    result = parse_event(kind, key, raw, schemas_dir=SCHEMAS, max_bytes=100_000)
    if isinstance(result, Rejected):
        assert result.reasons and all(isinstance(r, str) and r for r in result.reasons)
    else:
        assert isinstance(result, kind.model)


def test_refused_integration_bytes_with_a_plain_secret_are_marked_to_hide():
    from service.validation import parse_stored_integration

    def stored(doc):
        raw = orjson.dumps(doc)
        return parse_stored_integration(
            doc["id"].encode(), raw, schemas_dir=SCHEMAS, max_bytes=100_000, allow_http_hooks=False
        )

    plain = example("integration-s3.json")
    assert stored(plain).hide_value  # valid shape, but the secret is not encrypted
    broken = {**plain, "type": "ftp"}
    assert stored(broken).hide_value  # invalid shape, and the secret is still there in plain text
    no_secret = {**example("integration-local.json"), "enabled": "yes"}
    assert not stored(no_secret).hide_value
