"""Definition-time checks: a bad feature is refused when its product is added or loaded, naming its path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from feature_kit import fn, seq, shop

from ductape_jobs import ValidationError
from ductape_jobs.features.plan import plan_feature
from ductape_jobs.products import Products

WHERE = "products.shop.features.f"
EXTRA: dict[str, Any] = {
    "notifications": {"welcome": {"email": {"to": "$Input{to}", "subject": "Hi", "text": "Hello"}}},
    "apps": {"orders": {"actions": {"get": {"path": "/orders/:id"}}, "envs": {"dev": {"base_url": "http://x"}}}},
}


def refused(feature: dict[str, Any], **others: Any) -> ValidationError:
    with pytest.raises(ValidationError) as err:
        Products([]).add(shop({"f": feature, **others}, **EXTRA))
    return err.value


def job(tag: str, input: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "JOB", "event": tag, "input": input or {}, "retries": 1, "allow_fail": False}


# ------------------------------------------------------------------------------------------ sequences


def test_an_unknown_parent() -> None:
    err = refused({"sequence": [seq("a", fn("one")), seq("b", fn("two"), parents=["a", "nope"])]})
    assert err.field == f"{WHERE}.sequence[1].parents"
    assert "unknown parent 'nope'" in err.rule and "a, b" in err.rule


def test_parents_in_a_cycle() -> None:
    err = refused(
        {
            "sequence": [
                seq("start", fn("zero")),
                seq("a", fn("one"), parents=["start", "c"]),
                seq("b", fn("two"), parents=["a"]),
                seq("c", fn("three"), parents=["b"]),
            ]
        }
    )
    assert err.field == f"{WHERE}.sequence[1].parents"
    assert "cycle" in err.rule and "a -> c -> b -> a" in err.rule


def test_a_sequence_that_is_its_own_parent() -> None:
    err = refused({"sequence": [seq("a", fn("one"), parents=["a"])]})
    assert "cycle: a -> a" in err.rule


def test_a_sequence_tag_twice_and_an_event_twice_in_a_sequence() -> None:
    err = refused({"sequence": [seq("a", fn("one")), seq("a", fn("two"))]})
    assert (err.field, err.rule) == (f"{WHERE}.sequence[1].sequence_tag", "sequence 'a' is declared twice")
    err = refused({"sequence": [seq("a", fn("one"), fn("one"))]})
    assert err.field == f"{WHERE}.sequence[0].events[1].event" and "already in sequence 'a'" in err.rule


# ---------------------------------------------------------------------------------- $Sequence piping


@pytest.mark.parametrize(
    ("reference", "rule"),
    [
        ("$Sequence{later}{three}", "sequence 'later' does not run before 'b' (it is not one of its ancestors)"),
        ("$Sequence{side}{two}", "sequence 'side' does not run before 'b'"),
        ("$Sequence{nope}{one}", "the feature has no sequence 'nope'"),
        ("$Sequence{a}{nope}", "sequence 'a' has no event 'nope'"),
        ("$Sequence{b}{own}", "event 'own' does not come before 'own'"),
        ("$Sequence{b}{after}", "event 'after' does not come before 'own' in sequence 'b'"),
        ("$Sequence{a}{remind}{job_id}", "'remind' is a JOB event; a job event is void (it has no output)"),
    ],
)
def test_sequence_references_must_point_at_an_earlier_event_with_output(reference: str, rule: str) -> None:
    feature = {
        "sequence": [
            seq("a", fn("one"), job("remind")),
            seq("side", fn("two")),
            seq("b", fn("first"), fn("own", {"x": {"y": [f"text {reference}"]}}), fn("after"), parents=["a"]),
            seq("later", fn("three"), parents=["b"]),
        ]
    }
    err = refused(feature)
    assert err.field == f"{WHERE}.sequence[2].events[1].input.x.y[0]"
    assert reference in err.rule and rule in err.rule


def test_a_grandparent_and_an_earlier_event_of_the_same_sequence_may_be_piped_from() -> None:
    feature = {
        "sequence": [
            seq("a", fn("one")),
            seq("b", fn("two"), parents=["a"]),
            seq("c", fn("x"), fn("y", {"v": "$Sequence{a}{one}{id}", "w": "$Sequence{c}{x}"}), parents=["b"]),
        ]
    }
    spec = Products([shop({"f": feature})]).get("shop")  # type: ignore[list-item]
    plan = plan_feature(spec, "f", Products().locate)
    assert [s.tag for s in plan.sequences] == ["a", "b", "c"]
    y = plan.events[-1]
    assert (y.tag, y.after, y.position) == ("y", ("x",), 3)


def test_run_order_follows_parents_not_declaration() -> None:
    feature = {
        "sequence": [
            seq("last", fn("z"), parents=["mid"]),
            seq("mid", fn("y"), parents=["first"]),
            seq("first", fn("x")),
        ]
    }
    spec = Products([shop({"f": feature})]).get("shop")  # type: ignore[list-item]
    plan = plan_feature(spec, "f", Products().locate)
    assert [s.tag for s in plan.sequences] == ["first", "mid", "last"]
    assert [e.position for e in plan.events] == [0, 1, 2]


def test_a_piping_syntax_error_names_its_place() -> None:
    err = refused({"sequence": [seq("a", fn("one", {"to": "$Input{email"}))]})
    assert err.field == f"{WHERE}.sequence[0].events[0].input.to" and "unclosed" in err.rule


@pytest.mark.parametrize("text", ["$Input{email", "$Foo(1)", "$Inpt{a}"])
def test_a_piping_syntax_error_in_a_stored_events_input_names_its_place(text: str) -> None:
    """A JOB event's input is stored, and checked for secrets first: a malformed placeholder there raised a bare
    PipingSyntaxError naming no field (the CLI's exit 1, not bad input's 2)."""
    err = refused({"sequence": [seq("a", job("j", {"to": {"list": [text]}}))]})
    assert err.field == f"{WHERE}.sequence[0].events[0].input.to.list[0]"
    assert f"in {text!r}" in err.rule


@pytest.mark.parametrize(("retries", "rule"), [("3", "not text"), (True, "not a boolean")])
def test_a_job_events_retries_is_a_number(retries: object, rule: str) -> None:
    """As a schedule's and a job's counts: text was taken as its number (a seed-fidelity probe)."""
    err = refused({"sequence": [seq("a", {**job("j"), "retries": retries})]})
    assert err.field == "product.features.f.sequence[0].events[0].retries" and rule in err.rule


def test_an_input_key_the_schema_does_not_declare() -> None:
    err = refused({"input": {"email": "string"}, "sequence": [seq("a", fn("one", {"to": "$Input{mail}"}))]})
    assert err.field == f"{WHERE}.sequence[0].events[0].input.to"
    assert "declares no key 'mail'" in err.rule


# ------------------------------------------------------------------------------------------- events


@pytest.mark.parametrize(
    ("event", "field", "rule"),
    [
        ({"type": "NOTIFICATION", "event": "nope"}, "event", "defines no notification 'nope'"),
        ({"type": "ACTION", "event": "orders:nope"}, "event", "defines no action 'orders:nope'"),
        ({"type": "ACTION", "event": "billing:get"}, "event", "defines no app 'billing'"),
        ({"type": "DATABASE_ACTION", "event": "db:add"}, "event", "defines no database 'db'"),
        ({"type": "FEATURE", "event": "nope"}, "event", "defines no feature 'nope'"),
        ({"type": "FUNCTION", "event": "x", "repeat": {"every": 1000}}, "repeat", "only a JOB event takes repeat"),
    ],
)
def test_an_event_the_product_does_not_define(event: dict[str, Any], field: str, rule: str) -> None:
    err = refused({"sequence": [seq("a", fn("ok"), {"input": {}, **event})]})
    assert err.field == f"{WHERE}.sequence[0].events[1].{field}" and rule in err.rule


def test_events_the_product_defines_are_accepted() -> None:
    feature = {
        "sequence": [
            seq(
                "a",
                {"type": "notification", "event": "welcome", "input": {"to": "$Input{to}"}},
                {"type": "Action", "event": "get", "input": {"params": {"id": 1}}},
                {"type": "JOB", "event": "any-job-tag", "input": {}, "repeat": {"cron": "0 9 * * *"}},
                {"type": "FEATURE", "event": "g", "input": {}},
            )
        ]
    }
    Products([]).add(shop({"f": feature, "g": {"sequence": [seq("s", fn("x"))]}}, **EXTRA))


def test_an_unknown_event_type() -> None:
    err = refused({"sequence": [seq("a", {"type": "SMS", "event": "x"})]})
    assert err.field == "product.features.f.sequence[0].events[0].type"  # the one path format
    assert "unknown event type 'SMS'" in err.rule and "JOB" in err.rule


def test_features_that_call_each_other_in_a_loop() -> None:
    loop = {
        "f": {"sequence": [seq("a", {"type": "FEATURE", "event": "g"})]},
        "g": {"sequence": [seq("b", {"type": "FEATURE", "event": "h"})]},
        "h": {"sequence": [seq("c", {"type": "FEATURE", "event": "f"}), seq("d", fn("x"))]},
    }
    with pytest.raises(ValidationError) as err:
        Products([]).add(shop(loop))
    assert err.value.field == "products.shop.features.f" and "f -> g -> h -> f" in err.value.rule


@pytest.mark.parametrize(
    ("feature", "field", "rule"),
    [
        ({"tag": "other"}, f"{WHERE}.tag", "is 'other' but the feature is declared as 'f'"),
        ({"input": {"a": "string"}, "required": ["b"]}, f"{WHERE}.required", "'b' is not declared"),
    ],
)
def test_the_feature_itself(feature: dict[str, Any], field: str, rule: str) -> None:
    err = refused({**feature, "sequence": [seq("a", fn("x"))]})
    assert err.field == field and rule in err.rule


def test_a_bad_input_type_name_and_an_empty_sequence() -> None:
    err = refused({"input": {"a": "text"}, "sequence": [seq("a", fn("x"))]})
    assert err.field == "product.features.f.input" and "unknown type 'text'" in err.rule
    err = refused({"sequence": []})
    assert err.field == "product.features.f.sequence"


def test_a_product_file_with_a_bad_feature_is_refused(tmp_path: Path) -> None:
    product = shop({"f": {"sequence": [seq("a", fn("x")), seq("b", fn("y", {"v": "$Sequence{b}{y}"}))]}})
    path = tmp_path / "ductape.yaml"
    path.write_text(yaml.safe_dump({"products": [product]}))
    with pytest.raises(ValidationError) as err:
        Products.load(path)
    assert err.value.field == f"{WHERE}.sequence[1].events[0].input.v"


@pytest.mark.parametrize("tag", ["re\x1b[2Jmind", "remind\n", "re\x9bmind"], ids=["ESC", "newline", "CSI"])
def test_a_feature_tag_holds_no_control_character(tag: str) -> None:
    """A feature's tag names its runs (``ductape feature runs``): printable text, as a job's name."""
    with pytest.raises(ValidationError) as err:
        Products([]).add(shop({tag: {"sequence": [seq("a", fn("one"))]}}))
    assert "holds a control character" in err.value.rule and repr(tag) in err.value.rule


@pytest.mark.parametrize("slug", ["dev\n", "shop\n"], ids=["env", "resource"])
def test_an_env_or_a_resource_slug_holds_no_trailing_newline(slug: str) -> None:
    """``re.match``'s ``$`` matches before a final newline: ``dev\\n`` was taken as a slug."""
    section = {"envs": [slug]} if slug.startswith("dev") else {"resources": {slug: {"concurrency": 1}}}
    with pytest.raises(ValidationError) as err:
        Products([]).add({"tag": "shop", **section})
    assert "is not a valid slug" in err.value.rule
