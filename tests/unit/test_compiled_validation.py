"""The compiled validator answers the valid path; refusals still come, word for word, from the explaining
validator, and both draw the line in the same place (even where their regex engines differ)."""

from __future__ import annotations

import copy
from functools import cache

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from service.settings import Settings
from service.validation import (
    INTEGRATION,
    MAX_REASONS,
    ORDER,
    RECIPE,
    TRIGGER,
    Kind,
    Rejected,
    _reason,
    parse_event,
    schema_reasons,
)
from tests.events import EXAMPLES, example

SCHEMAS = Settings().schemas_dir
KINDS = {"recipe": RECIPE, "order": ORDER, "integration": INTEGRATION, "trigger": TRIGGER}


@cache
def reference_validator(schema_file: str) -> Draft202012Validator:
    docs = [orjson.loads(p.read_bytes()) for p in sorted(SCHEMAS.glob("*.schema.json"))]
    registry: Registry = Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in docs)
    return Draft202012Validator(orjson.loads((SCHEMAS / schema_file).read_bytes()), registry=registry)


def reference_reasons(schema_file: str, doc: object) -> list[str]:
    """What the pure-Python path alone answers (as before the compiled validator)."""
    errors = reference_validator(schema_file).iter_errors(doc)
    errors = sorted(errors, key=lambda e: list(map(str, e.absolute_path)))
    return [_reason(e) for e in errors[:MAX_REASONS]]


def parse(kind: Kind, doc: dict) -> object:
    key = str(doc.get(kind.key_field(doc), "")).encode()
    return parse_event(kind, key, orjson.dumps(doc), schemas_dir=SCHEMAS, max_bytes=100_000)


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.json")), ids=lambda p: p.name)
def test_a_valid_event_never_reaches_the_explaining_validator(path, monkeypatch):
    def explained(self, instance, _schema=None):
        raise AssertionError("the explaining validator ran on a valid event")

    monkeypatch.setattr(Draft202012Validator, "iter_errors", explained)
    kind = KINDS[path.name.split("-")[0]]
    assert not isinstance(parse(kind, example(path.name)), Rejected)


def test_a_refusal_keeps_the_words_of_the_explaining_validator():
    doc = example("order-created.json")
    doc["lineItems"][0]["itemQuantity"] = -1
    doc["tenant"] = "Not A Tenant"
    result = parse(ORDER, doc)
    assert isinstance(result, Rejected)
    assert result.reasons == reference_reasons(ORDER.schema_file, doc)
    assert result.reasons == [
        "lineItems[0].itemQuantity: -1 is less than the minimum of 0",
        "tenant: 'Not A Tenant' does not match '^[a-z0-9][a-z0-9-]{0,62}$'",
    ]


# Strings where Python's `re` and a compiled engine part ways: `$` before a final newline, and the
# separators Python counts as `\s` (U+001C..U+001F) that Unicode does not.
EDGES = ["x\n", "x\n\n", "a\x1cb", "a\x1fb", "a\x85b", "a\u2028b", "a\u00a0b", "\n", "A", "a--b", "../x"]


@pytest.mark.parametrize("edge", EDGES, ids=repr)
def test_regex_edges_are_judged_as_the_explaining_validator_judges_them(edge):
    hook = example("integration-zapier.json")
    hook["settings"]["hook-url"] = "https://hooks.example/x" + edge
    recipe = {**example("recipe-created.json"), "tenant": "demo" + edge}
    local = example("integration-local.json")
    local["settings"]["directory"] = "out" + edge
    for kind, doc in ((INTEGRATION, hook), (RECIPE, recipe), (INTEGRATION, local)):
        assert schema_reasons(SCHEMAS, kind.schema_file, doc) == reference_reasons(kind.schema_file, doc), doc


def test_a_value_the_compiled_validator_cannot_take_is_judged_by_the_explaining_one():
    doc = example("order-created.json")
    doc["lineItems"][0]["itemQuantity"] = 2**70
    assert schema_reasons(SCHEMAS, ORDER.schema_file, doc) == reference_reasons(ORDER.schema_file, doc)


text = st.text(alphabet=st.sampled_from("aZ09-_./:\n\r\t \x1c\x85\u2028é"), max_size=12)
values = st.one_of(st.none(), st.booleans(), st.integers(-3, 2**64), st.floats(allow_nan=False), text)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(KINDS)), st.data())
def test_both_validators_agree_on_generated_changes(kind_name, data):
    base = example(
        {
            "recipe": "recipe-created.json",
            "order": "order-created.json",
            "integration": "integration-sftp.json",
            "trigger": "trigger-recipe.json",
        }[kind_name]
    )
    doc = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3))):
        target = doc
        if kind_name == "integration" and isinstance(doc.get("settings"), dict) and doc["settings"]:
            target = doc["settings"] if data.draw(st.booleans()) else doc
        field = data.draw(st.sampled_from(sorted(target)))
        # A whole new value, or the old one with an awkward tail (so that a pattern is near its edge).
        target[field] = data.draw(st.one_of(values, text.map(str(target[field]).__add__)))
    kind = KINDS[kind_name]
    assert schema_reasons(SCHEMAS, kind.schema_file, doc) == reference_reasons(kind.schema_file, doc)
