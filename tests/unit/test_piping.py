"""Data piping: ``$Input{...}``, ``$Session{...}``, the other sources, functions, escapes, errors, check()."""

from __future__ import annotations

import pickle
import random
import tracemalloc
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from ductape_jobs.errors import DuctapeError
from ductape_jobs.limits import MAX_FILLED_BYTES, MAX_INPUT_BYTES, check_object
from ductape_jobs.piping import (
    FUNCTIONS,
    Call,
    Literal,
    PipingError,
    PipingMissingError,
    PipingSyntaxError,
    PipingTooLarge,
    Reference,
    Scope,
    Template,
    check,
    has_placeholders,
    parse,
    references,
    register_function,
    render,
    resolve,
)
from ductape_jobs.piping.grammar import forget_parsed

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
NOW_TEXT = "2026-03-02T12:00:00.000Z"


@pytest.fixture
def scope() -> Scope:
    return Scope(
        input={
            "user": {"name": "Ann", "email": "ann@example.com", "age": 41, "vip": True, "nick": None},
            "items": [{"sku": "a-1", "qty": 2}, {"sku": "b-2", "qty": 1}],
            "tags": ["x", "y"],
            "date": "2026-04-01",
            "price": 9.5,
            "count": 0,
            "empty": {},
            "weird key": "spaced",
            "text": "$Input{user}{name}",
        },
        session={"user": {"id": "u_1", "email": "ann@session.example"}, "roles": ["admin"]},
        variables={"shop": {"api_url": "https://shop.example", "limits": {"daily": 100}}},
        constants={"shop": {"currency": "EUR", "rates": [1, 2, 3]}},
        secrets={"stripe_key": "sk_test_123"},
        sequence={"checkout": {"charge": {"id": "ch_9", "amount": 1200, "lines": [{"id": "l1"}]}}},
        now=NOW,
    )


@pytest.fixture
def restore_functions() -> Any:
    saved = dict(FUNCTIONS)
    yield
    FUNCTIONS.clear()
    FUNCTIONS.update(saved)
    forget_parsed()


# ------------------------------------------------------------------------------- type preservation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$Input{user}", {"name": "Ann", "email": "ann@example.com", "age": 41, "vip": True, "nick": None}),
        ("$Input{tags}", ["x", "y"]),
        ("$Input{user}{age}", 41),
        ("$Input{price}", 9.5),
        ("$Input{user}{vip}", True),
        ("$Input{user}{nick}", None),
        ("$Input{count}", 0),
        ("$Input{empty}", {}),
        ("$Input{user}{name}", "Ann"),
    ],
)
def test_a_whole_placeholder_keeps_the_value_type(scope: Scope, text: str, expected: Any) -> None:
    result = resolve(text, scope)
    assert result == expected
    assert type(result) is type(expected)


def test_a_whole_function_call_keeps_its_result_type(scope: Scope) -> None:
    assert resolve("$Default($Input{missing}, 5)", scope) == 5
    assert resolve("$Default($Input{tags}, 5)", scope) == ["x", "y"]
    assert resolve("$Default($Input{missing}, null)", scope) is None


def test_surrounding_spaces_make_it_text(scope: Scope) -> None:
    assert resolve(" $Input{user}{age}", scope) == " 41"
    assert resolve("$Input{user}{age} ", scope) == "41 "


# ------------------------------------------------------------------------------------ embedded text


def test_placeholders_embedded_in_text_become_text(scope: Scope) -> None:
    assert resolve("Hello $Input{user}{name} on $Input{date}.", scope) == "Hello Ann on 2026-04-01."
    assert resolve("$Input{user}{name}$Input{user}{age}", scope) == "Ann41"


def test_embedded_values_read_as_in_javascript(scope: Scope) -> None:
    assert resolve("tags=$Input{tags}", scope) == 'tags=["x","y"]'
    assert resolve("first=$Input{items}{[0]}", scope) == 'first={"sku":"a-1","qty":2}'
    assert resolve("age=$Input{user}{age} price=$Input{price}", scope) == "age=41 price=9.5"
    assert resolve("vip=$Input{user}{vip} nick=$Input{user}{nick}", scope) == "vip=true nick=null"  # as in JS


def test_embedded_json_keeps_non_ascii() -> None:
    assert resolve("x $Input{a}", Scope(input={"a": {"name": "Zoë"}})) == 'x {"name":"Zoë"}'


def test_resolved_values_are_not_resolved_again(scope: Scope) -> None:
    assert resolve("$Input{text}", scope) == "$Input{user}{name}"
    assert resolve("said: $Input{text}", scope) == "said: $Input{user}{name}"


# ----------------------------------------------------------------------------------- nested values


def test_dicts_and_lists_are_walked_and_keys_are_left_alone(scope: Scope) -> None:
    value = {
        "push_notification": {
            "title": "Reminder Alert",
            "data": {"eventId": "$Input{user}{email}", "reminderType": "upcoming_event"},
        },
        "$Input{user}{name}": "$Input{user}{age}",
        "list": ["$Input{tags}", ["$Input{user}{vip}", 3, None, 2.5]],
        "tuple": ("$Input{count}", "plain"),
        "number": 7,
    }
    assert resolve(value, scope) == {
        "push_notification": {
            "title": "Reminder Alert",
            "data": {"eventId": "ann@example.com", "reminderType": "upcoming_event"},
        },
        "$Input{user}{name}": 41,
        "list": [["x", "y"], [True, 3, None, 2.5]],
        "tuple": (0, "plain"),
        "number": 7,
    }


def test_containers_are_new_and_the_original_is_untouched(scope: Scope) -> None:
    value = {"a": ["$Input{user}{name}"], "b": {"c": "plain"}}
    result = resolve(value, scope)
    assert result is not value and result["a"] is not value["a"] and result["b"] is not value["b"]
    assert value == {"a": ["$Input{user}{name}"], "b": {"c": "plain"}}


def test_the_seed_job_event_input_resolves(scope: Scope) -> None:
    event_input = {
        "email": {
            "to": "$Input{user}{email}",
            "subject": "Event Reminder",
            "body": "Hello! This is a reminder for your upcoming event on $Input{date}.",
        },
    }
    assert resolve(event_input, scope) == {
        "email": {
            "to": "ann@example.com",
            "subject": "Event Reminder",
            "body": "Hello! This is a reminder for your upcoming event on 2026-04-01.",
        },
    }


# ------------------------------------------------------------------------------------- list indexes


def test_list_indexes(scope: Scope) -> None:
    assert resolve("$Input{items}{[0]}{sku}", scope) == "a-1"
    assert resolve("$Input{items}{[1]}", scope) == {"sku": "b-2", "qty": 1}
    assert resolve("$Input{tags}{[1]}", scope) == "y"
    assert parse("$Input{items}{[12]}{sku}").parts == (Reference("Input", ("items", 12, "sku")),)


def test_a_key_that_looks_like_a_number_is_still_a_key() -> None:
    assert resolve("$Input{0}", Scope(input={"0": "zero"})) == "zero"
    assert parse("$Input{0}").parts == (Reference("Input", ("0",)),)


def test_keys_are_taken_verbatim(scope: Scope) -> None:
    assert resolve("$Input{weird key}", scope) == "spaced"
    assert resolve("$Input{a.b}", Scope(input={"a.b": 1})) == 1


# -------------------------------------------------------------------------------------- all sources


def test_session(scope: Scope) -> None:
    assert resolve({"userId": "$Session{user}{id}", "email": "$Session{user}{email}"}, scope) == {
        "userId": "u_1",
        "email": "ann@session.example",
    }
    assert resolve("$Session{roles}{[0]}", scope) == "admin"


def test_variable_constant_secret(scope: Scope) -> None:
    assert resolve("$Variable{shop}{api_url}/orders", scope) == "https://shop.example/orders"
    assert resolve("$Variable{shop}{limits}{daily}", scope) == 100
    assert resolve("$Constant{shop}{currency}", scope) == "EUR"
    assert resolve("$Constant{shop}{rates}{[2]}", scope) == 3
    assert resolve("Bearer $Secret{stripe_key}", scope) == "Bearer sk_test_123"


def test_sequence(scope: Scope) -> None:
    assert resolve("$Sequence{checkout}{charge}", scope) == {"id": "ch_9", "amount": 1200, "lines": [{"id": "l1"}]}
    assert resolve("$Sequence{checkout}{charge}{amount}", scope) == 1200
    assert resolve("$Sequence{checkout}{charge}{lines}{[0]}{id}", scope) == "l1"


def test_now_is_iso_utc_text(scope: Scope) -> None:
    assert resolve("$Now", scope) == NOW_TEXT
    assert resolve("at $Now!", scope) == f"at {NOW_TEXT}!"
    assert parse("$Now").parts == (Reference("Now", ()),)


def test_scope_now_is_converted_to_utc_and_must_be_aware() -> None:
    plus_two = timezone(timedelta(hours=2))
    assert resolve("$Now", Scope(now=datetime(2026, 3, 2, 14, 0, 0, 123456, tzinfo=plus_two))) == (
        "2026-03-02T12:00:00.123Z"
    )
    with pytest.raises(ValueError, match="timezone-aware"):
        Scope(now=datetime(2026, 3, 2, 12, 0))


def test_scope_defaults() -> None:
    scope = Scope()
    assert scope.input == {} and scope.session is None and scope.secrets == {}
    assert scope.now.tzinfo is UTC
    assert resolve("$Default($Session{user}, 'anonymous')", scope) == "anonymous"


# ---------------------------------------------------------------------------------------- functions


def test_concat_uppercase_lowercase(scope: Scope) -> None:
    assert resolve("$Concat($Input{user}{name}, ' <', $Input{user}{email}, '>')", scope) == "Ann <ann@example.com>"
    assert resolve("$Uppercase($Input{user}{name})", scope) == "ANN"
    assert resolve("$Lowercase('MiXeD')", scope) == "mixed"
    assert resolve("$Concat($Input{tags}, 1, 2.5, true, null)", scope) == '["x","y"]12.5truenull'
    assert resolve("$Concat('only')", scope) == "only"


def test_nested_calls(scope: Scope) -> None:
    assert resolve("$Uppercase($Concat($Input{user}{name}, '-', $Lowercase('X')))", scope) == "ANN-X"
    assert resolve("$Concat($Default($Input{nope}, 'n/a'), '!')", scope) == "n/a!"


def test_calls_embedded_in_text(scope: Scope) -> None:
    assert resolve("Dear $Uppercase($Input{user}{name}), hi", scope) == "Dear ANN, hi"
    assert resolve("due $DateAdd($Now, 2, 'days') ok", scope) == "due 2026-03-04T12:00:00.000Z ok"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$DateAdd($Now, 30, 'seconds')", "2026-03-02T12:00:30.000Z"),
        ("$DateAdd($Now, 5, 'minutes')", "2026-03-02T12:05:00.000Z"),
        ("$DateAdd($Now, -3, 'hours')", "2026-03-02T09:00:00.000Z"),
        ("$DateAdd($Now, 1.5, 'days')", "2026-03-04T00:00:00.000Z"),
        ("$DateAdd($Now, 2, 'weeks')", "2026-03-16T12:00:00.000Z"),
        ("$DateAdd($Now, 1, 'day')", "2026-03-03T12:00:00.000Z"),
        ("$DateAdd($Now, '2', 'DAYS')", "2026-03-04T12:00:00.000Z"),
        ("$DateAdd('2026-01-31T23:00:00Z', 1, 'hours')", "2026-02-01T00:00:00.000Z"),
        ("$DateAdd('2026-01-31T23:00:00+02:00', 0, 'hours')", "2026-01-31T21:00:00.000Z"),
        ("$DateAdd('2026-04-01', 1, 'days')", "2026-04-02T00:00:00.000Z"),
        ("$DateAdd($Input{date}, $Input{count}, 'days')", "2026-04-01T00:00:00.000Z"),
    ],
)
def test_date_add(scope: Scope, text: str, expected: str) -> None:
    assert resolve(text, scope) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$DateAdd('soon', 1, 'days')", "$DateAdd('soon', 1, 'days'): not an ISO 8601 date: 'soon'"),
        ("$DateAdd($Now, 1, 'fortnights')", "unit must be seconds, minutes, hours, days or weeks, got 'fortnights'"),
        ("$DateAdd($Now, 'many', 'days')", "amount must be a number, got 'many'"),
        ("$DateAdd($Now, true, 'days')", "amount must be a number, got True"),
        ("$DateAdd(5, 1, 'days')", "a date must be an ISO 8601 string, got int"),
        ("$DateAdd($Now, 1e12, 'weeks')", "$DateAdd($Now, 1000000000000.0, 'weeks'): "),
        # a security probe: Python's own words ("Python int too large to convert to C int") were the rule
        ("$DateAdd($Now, 99999999999, 'days')", "99999999999 days from '2026-03-02T12:00:00.000Z' is beyond the dates"),
        ("$DateAdd($Now, 3000000, 'days')", "3000000 days from '2026-03-02T12:00:00.000Z' is beyond the dates"),
        ("$DateAdd($Now, 'nan', 'days')", "amount must be a number, got 'nan'"),
        ("$DateAdd($Now, 'inf', 'days')", "'inf' days from '2026-03-02T12:00:00.000Z' is beyond the dates"),
    ],
)
def test_a_failing_function_raises_piping_error_naming_the_call(scope: Scope, text: str, message: str) -> None:
    with pytest.raises(PipingError) as info:
        resolve(text, scope)
    assert message in str(info.value)
    assert not isinstance(info.value, PipingMissingError)


def test_default_falls_back_only_when_the_path_is_missing(scope: Scope) -> None:
    assert resolve("$Default($Input{user}{phone}, 'none')", scope) == "none"
    assert resolve("$Default($Input{items}{[9]}, 'none')", scope) == "none"
    assert resolve("$Default($Input{user}{nick}, 'none')", scope) is None  # present, null
    assert resolve("$Default($Input{user}{name}, $Input{nope})", scope) == "Ann"  # fallback not evaluated
    assert resolve("$Default($Input{a}, $Default($Input{b}, 'c'))", scope) == "c"
    no_session = Scope(input={"id": "guest"})
    assert resolve("$Default($Session{user}{id}, $Input{id})", no_session) == "guest"


def test_default_does_not_hide_other_errors(scope: Scope) -> None:
    with pytest.raises(PipingError, match=r"cannot look up 'x' in input.user.name: it is a string"):
        resolve("$Default($Input{user}{name}{x}, 'fb')", scope)
    with pytest.raises(PipingMissingError, match=r"^\$Input{nope}: no key 'nope' in input$"):
        resolve("$Default($Input{a}, $Input{nope})", scope)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$Concat('single', \"double\")", "singledouble"),
        ("$Concat('it\\'s', \" \\\"q\\\" \", 'back\\\\slash')", 'it\'s "q" back\\slash'),
        ("$Concat('a\\nb\\tc')", "a\nb\tc"),
        ("$Concat('a, b', ')', '$Input{user}')", "a, b)$Input{user}"),  # literals are not piped
        ("$Concat( 'x' ,'y'  ,  'z' )", "xyz"),
        ("$Concat('')", ""),
    ],
)
def test_string_literals(scope: Scope, text: str, expected: str) -> None:
    assert resolve(text, scope) == expected


@pytest.mark.parametrize(
    ("literal", "expected"),
    [("42", 42), ("-7", -7), ("+3", 3), ("2.5", 2.5), (".5", 0.5), ("1e3", 1000.0), ("true", True)],
)
def test_number_and_word_literals(scope: Scope, literal: str, expected: Any) -> None:
    result = resolve(f"$Default($Input{{nope}}, {literal})", scope)
    assert result == expected and type(result) is type(expected)
    assert resolve("$Default($Input{nope}, false)", scope) is False


def test_ast_of_a_call() -> None:
    template = parse("Hi $Concat($Input{a}{[0]}, 'x', 1, 2.5, true, null, $Lowercase($Now))")
    assert template == Template(
        "Hi $Concat($Input{a}{[0]}, 'x', 1, 2.5, true, null, $Lowercase($Now))",
        (
            Literal("Hi "),
            Call(
                "Concat",
                (
                    Reference("Input", ("a", 0)),
                    Literal("x"),
                    Literal(1),
                    Literal(2.5),
                    Literal(True),
                    Literal(None),
                    Call("Lowercase", (Reference("Now"),)),
                ),
            ),
        ),
    )
    call = template.parts[1]
    assert str(call) == "$Concat($Input{a}{[0]}, 'x', 1, 2.5, true, null, $Lowercase($Now))"
    assert template.whole is None
    assert parse("$Input{a}").whole == Reference("Input", ("a",))


# --------------------------------------------------------------------------------------- registry


def test_register_a_function(scope: Scope, restore_functions: None) -> None:
    register_function("Repeat", lambda text, times=2: str(text) * int(times), 1, 2)
    assert resolve("$Repeat($Input{user}{name})", scope) == "AnnAnn"
    assert resolve("$Repeat('ab', 3)", scope) == "ababab"
    with pytest.raises(PipingSyntaxError, match=r"\$Repeat takes 1 to 2 arguments, got 3"):
        parse("$Repeat('a', 1, 2)")
    assert FUNCTIONS["Repeat"].arity == "1 to 2"


@pytest.mark.parametrize("made", [float("inf"), float("nan"), 2**63, -(2**63) - 1, [1, float("inf")], {"x": [2**70]}])
def test_a_functions_number_past_an_inputs_is_an_error(scope: Scope, restore_functions: None, made: Any) -> None:
    """What a function makes is an input's value: a number no input may hold (``inf``, past 64 bits) is refused, as
    a literal is."""
    register_function("Make", lambda: made, 0, 0)
    with pytest.raises(PipingError, match=r"a number of its result (must be a finite|is beyond a signed 64-bit)"):
        resolve({"x": "$Make()"}, scope)
    assert resolve("$Default(9223372036854775807, 0)", scope) == 2**63 - 1  # the bound itself is a number


def test_register_a_lazy_function(scope: Scope, restore_functions: None) -> None:
    register_function("First", lambda *thunks: thunks[0](), 1, None, lazy=True)
    assert resolve("$First($Input{user}{age}, $Input{nope})", scope) == 41


def test_registering_clears_the_parse_cache(restore_functions: None) -> None:
    with pytest.raises(PipingSyntaxError, match="unknown function"):
        parse("$Shout('a')")
    parse("$Uppercase('a')")
    register_function("Shout", lambda x: f"{x}!", 1, 1)
    assert parse("$Shout('a')").parts == (Call("Shout", (Literal("a"),)),)
    register_function("Uppercase", lambda a, b: a, 2, 2, replace=True)
    with pytest.raises(PipingSyntaxError, match=r"\$Uppercase takes 2 arguments, got 1"):
        parse("$Uppercase('a')")


@pytest.mark.parametrize(
    ("name", "lo", "hi", "kwargs", "message"),
    [
        ("Concat", 1, 1, {}, "already registered"),
        ("Input", 1, 1, {}, "is a source name"),
        ("9lives", 1, 1, {}, "bad function name"),
        ("has-dash", 1, 1, {}, "bad function name"),
        ("Ünï", 1, 1, {}, "bad function name"),
        ("", 1, 1, {}, "bad function name"),
        ("Fine", 2, 1, {}, "bad arity"),
        ("Fine", -1, None, {}, "bad arity"),
        ("Fine", 1, 1, {"missing_ok": [1]}, "missing_ok"),
    ],
)
def test_bad_registrations(name: str, lo: int, hi: int | None, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        register_function(name, lambda *a: None, lo, hi, **kwargs)
    assert "Fine" not in FUNCTIONS


def test_a_function_removed_after_parsing_fails_at_resolve(scope: Scope, restore_functions: None) -> None:
    register_function("Gone", lambda: "x", 0, 0)
    parse("$Gone()")
    del FUNCTIONS["Gone"]
    with pytest.raises(PipingError, match=r"^\$Gone\(\): unknown function \$Gone$"):
        resolve("$Gone()", scope)


# ------------------------------------------------------------------------------------------ escapes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("costs $$5", "costs $5"),
        ("$$Input{user}", "$Input{user}"),
        ("$$$Input{user}{name}", "$Ann"),
        ("$$$$", "$$"),
        ("$$Now", "$Now"),
        ("pay $$$Input{price} now", "pay $9.5 now"),
    ],
)
def test_double_dollar_is_a_literal_dollar(scope: Scope, text: str, expected: str) -> None:
    assert resolve(text, scope) == expected


@pytest.mark.parametrize("text", ["costs $5", "US$ 10", "$", "a $ b", "ends with $", "$USD only", "$Nowhere", "$_x"])
def test_a_dollar_that_cannot_start_a_placeholder_is_text(scope: Scope, text: str) -> None:
    assert resolve(text, scope) is text
    assert parse(text).is_static


# ------------------------------------------------------------------------------------- missing keys


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("$Input{user}{email2}", "$Input{user}{email2}: no key 'email2' in input.user"),
        ("$Input{nope}", "$Input{nope}: no key 'nope' in input"),
        ("$Input{items}{[5]}{sku}", "$Input{items}{[5]}{sku}: index 5 out of range for input.items (length 2)"),
        ("$Input{items}{[1]}{price}", "$Input{items}{[1]}{price}: no key 'price' in input.items[1]"),
        ("$Input{empty}{x y}", "$Input{empty}{x y}: no key 'x y' in input.empty"),
        ("$Session{org}{id}", "$Session{org}{id}: no key 'org' in session"),
        ("$Variable{crm}{url}", "$Variable{crm}{url}: no key 'crm' in variables"),
        ("$Variable{shop}{token}", "$Variable{shop}{token}: no key 'token' in variables.shop"),
        ("$Constant{shop}{rates}{[3]}", "$Constant{shop}{rates}{[3]}: index 3 out of range for constants.shop.rates"),
        ("$Secret{aws}", "$Secret{aws}: no key 'aws' in secrets"),
        ("$Sequence{checkout}{refund}", "$Sequence{checkout}{refund}: no key 'refund' in sequence.checkout"),
        ("$Sequence{signup}{x}{y}", "$Sequence{signup}{x}{y}: no key 'signup' in sequence"),
    ],
)
def test_missing_values_name_the_whole_path(scope: Scope, text: str, message: str) -> None:
    with pytest.raises(PipingMissingError) as info:
        resolve(f"embedded {text} too", scope)
    assert str(info.value).startswith(message)
    assert info.value.placeholder == text


def test_the_spec_message_exactly() -> None:
    with pytest.raises(PipingError) as info:
        resolve("$Input{user}{email}", Scope(input={"user": {"name": "x"}}))
    assert str(info.value) == "$Input{user}{email}: no key 'email' in input.user"
    assert info.value.reason == "no key 'email' in input.user"


def test_session_without_a_session() -> None:
    with pytest.raises(PipingMissingError, match=r"^\$Session{user}{id}: no session was given$"):
        resolve("$Session{user}{id}", Scope(input={"a": 1}))


def test_a_key_with_odd_characters_is_quoted_in_the_location() -> None:
    with pytest.raises(PipingMissingError, match=r"no key 'z' in input\['a-b'\]\[0\]$"):
        resolve("$Input{a-b}{[0]}{z}", Scope(input={"a-b": [{}]}))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "$Input{user}{name}{first}",
            "$Input{user}{name}{first}: cannot look up 'first' in input.user.name: it is a string",
        ),
        ("$Input{user}{age}{x}", "cannot look up 'x' in input.user.age: it is a number"),
        ("$Input{user}{nick}{x}", "cannot look up 'x' in input.user.nick: it is null"),
        ("$Input{user}{vip}{[0]}", "cannot take index [0] of input.user.vip: it is a boolean"),
        ("$Input{user}{[0]}", "cannot take index [0] of input.user: it is an object"),
        ("$Input{user}{name}{[0]}", "cannot take index [0] of input.user.name: it is a string"),
        ("$Input{items}{sku}", "cannot look up 'sku' in input.items: it is a list (write {[0]} for a list index)"),
        ("$Input{items}{0}", "cannot look up '0' in input.items: it is a list"),
    ],
)
def test_a_path_into_a_non_container(scope: Scope, text: str, message: str) -> None:
    with pytest.raises(PipingError) as info:
        resolve(text, scope)
    assert message in str(info.value)
    assert not isinstance(info.value, PipingMissingError)


def test_errors_say_where_in_the_value_they_are(scope: Scope) -> None:
    with pytest.raises(PipingError) as info:
        resolve({"email": {"cc": ["ok", "$Input{user}{fax}"]}}, scope)
    assert info.value.at == ("email", "cc", 1)
    with pytest.raises(PipingSyntaxError) as syntax:
        resolve({"a": [{"b": "$Input{x"}]}, scope)
    assert syntax.value.at == ("a", 0, "b")


def test_the_errors_belong_to_the_exception_tree() -> None:
    for cls in (PipingError, PipingMissingError, PipingSyntaxError):
        assert issubclass(cls, DuctapeError) and issubclass(cls, ValueError)
    assert issubclass(PipingMissingError, PipingError)
    assert not issubclass(PipingSyntaxError, PipingError)


def test_the_errors_pickle() -> None:
    too_large = pickle.loads(pickle.dumps(PipingTooLarge(MAX_FILLED_BYTES)))
    assert type(too_large) is PipingTooLarge and str(too_large) == TOO_MUCH and too_large.at == ()
    assert issubclass(PipingTooLarge, PipingError)
    missing = pickle.loads(pickle.dumps(PipingMissingError("$Input{a}", "no key 'a' in input")))
    assert type(missing) is PipingMissingError and str(missing) == "$Input{a}: no key 'a' in input"
    syntax = pickle.loads(pickle.dumps(PipingSyntaxError("$Foo{x}", 0, "unknown source")))
    assert (syntax.text, syntax.position, syntax.reason) == ("$Foo{x}", 0, "unknown source")


# ------------------------------------------------------------------------------------------- the bound


TOO_MUCH = (
    f"filled in, it is more than {MAX_FILLED_BYTES:,} bytes as JSON, the bound on what placeholders fill in: they fill "
    "in too much"
)


def _size(value: Any) -> int:
    """The bytes of ``value`` as a stored input is measured (``limits``' encoder, in UTF-8)."""
    from ductape_jobs.limits import _ENCODE

    return len(_ENCODE(value).encode())


@pytest.mark.parametrize(
    "value",
    [
        {"whole": "$Input{user}", "text": 'é "$Input{user}" \n $Input{price} $Input{user}{nick} $Now', "n": 1.5},
        ["$Session{user}", "$Concat($Input{tags}, '✓', $Input{count})", True, None, -7, {"ключ": ["$Input{empty}"]}],
        {"nested": {"deep": [["$Sequence{checkout}{charge}"], {}], "plain": "no placeholder \u2028 \x01"}},
        "$Uppercase($Input{user}{name})",
    ],
)
def test_the_bound_counts_what_is_filled_in_as_a_stored_input_is_measured(scope: Scope, value: Any) -> None:
    """To the byte: a resolution of exactly ``limit`` bytes of JSON is taken, one more byte than ``limit`` is not."""
    size = _size(resolve(value, scope))
    assert resolve(value, scope, limit=size) == resolve(value, scope)
    with pytest.raises(PipingTooLarge):
        resolve(value, scope, limit=size - 1)


def _peak(work: Any) -> tuple[BaseException | None, int]:
    tracemalloc.start()
    try:
        work()
    except Exception as exc:
        return exc, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return None, 0


@pytest.mark.parametrize(
    ("value", "where"),
    [
        ({f"k{i}": "a$Session{blob}" for i in range(9_000)}, "9,000 values, 10 KB each"),
        ({"k": "$Session{blob}" * 4_000}, "4,000 placeholders in one text"),
        ({"k": "$Concat(" + ", ".join(["$Session{blob}"] * 4_000) + ")"}, "a function of 4,000 of them"),
        ({f"k{i}": "$Uppercase($Session{blob})" for i in range(9_000)}, "a function 9,000 times"),
        ({f"k{i}": "x $Session{object}" for i in range(2_000)}, "an object turned into text 2,000 times"),
        (["$Session{object}"] * 2_000, "an object 2,000 times"),
        (  # each inner call fits (900 KB): the outer one's arguments were all made (45 MB) before one was measured
            {"k": "$Concat(" + ", ".join(["$Concat(" + ", ".join(["$Session{blob}"] * 90) + ")"] * 50) + ")"},
            "a function of 50 calls, each near the bound",
        ),
    ],
)
def test_what_placeholders_fill_in_is_bounded_while_it_is_built(value: Any, where: str) -> None:
    """The 90 MB a 250 KB input could fill in is never built: resolving stops at the bound, whatever makes it."""
    session = {"blob": "B" * 10_000, "object": {f"f{i}": "v" * 100 for i in range(100)}}
    error, peak = _peak(lambda: resolve(value, Scope(session=session, now=NOW)))
    assert isinstance(error, PipingTooLarge) and str(error) == TOO_MUCH, where
    assert error.at == () and error.limit == MAX_FILLED_BYTES  # the whole value's bound: no place to blame
    assert peak < 8 * MAX_FILLED_BYTES, f"{where}: {peak:,} bytes at the peak"


def test_a_value_within_the_bound_resolves_and_a_stored_input_at_it_fills_in(scope: Scope) -> None:
    """A stored input at its bound, without placeholders or with ones that fill in no more, resolves whole; a value
    filled in to exactly a bound resolves, and one byte more does not."""
    at = {f"k{i}": "x" * (65_528 if i < 3 else 65_527) for i in range(4)}  # exactly a stored input's bound
    assert _size(at) == MAX_INPUT_BYTES and check_object(at, "input") is at and resolve(at, scope) == at
    bound = MAX_INPUT_BYTES  # as a limit of the resolution too: filled in to exactly it, then one byte past it
    filled = resolve({**at, "k3": "x" * 65_526 + "$Input{count}"}, scope, limit=bound)
    assert filled == {**at, "k3": "x" * 65_526 + "0"}
    with pytest.raises(PipingTooLarge):
        resolve({**at, "k3": "x" * 65_526 + "$Input{count}$Input{count}"}, scope, limit=bound)  # one byte more
    assert render(parse("$Input{user}{name} " * 3), scope) == "Ann Ann Ann "
    with pytest.raises(PipingTooLarge):
        render(parse("$Input{user}{name}"), scope, limit=4)


def test_a_whole_output_piped_into_the_next_event_fits() -> None:
    """An event's output may be up to a MiB and is piped whole (``$Sequence{...}``): a 300 KB one was refused when
    what placeholders fill in had a stored input's bound (256 KiB)."""
    rows = [{"id": i, "name": "n" * 90} for i in range(3_000)]  # about 300 KB as JSON
    scope = Scope(sequence={"fetch": {"list": {"rows": rows}}})
    assert _size(rows) > MAX_INPUT_BYTES
    assert resolve({"rows": "$Sequence{fetch}{list}{rows}"}, scope) == {"rows": rows}


def test_a_registered_functions_result_is_counted_where_it_lands(scope: Scope, restore_functions: None) -> None:
    """A product's own function may make what it likes; what it returns is bounded as any value filled in."""
    register_function("Repeat", lambda text, n: text * n, 2, 2)
    assert resolve("$Repeat('ab', 3)", scope) == "ababab"
    with pytest.raises(PipingTooLarge):
        resolve({"k": "$Repeat('ab', 600000)"}, scope)


# ------------------------------------------------------------------------------------ syntax errors


@pytest.mark.parametrize(
    ("text", "position", "reason"),
    [
        ("$Foo{x}", 0, "unknown source '$Foo'; sources are $Input, $Session"),
        ("Hi $input{x}", 3, "unknown source '$input' (did you mean $Input?)"),
        ("$Foo{x", 0, "unknown source '$Foo'"),
        ("Hello $Input{a", 12, "unclosed '{' in '$Input{a'"),
        ("$Input{a}{b", 9, "unclosed '{'"),
        ("$Input{a $Input{b}}", 6, "unclosed '{' in '$Input{a $Input{b'"),
        ("$Input{}", 6, "empty key '{}'"),
        ("$Input{a}{[x]}", 9, "a list index is a whole number in brackets, like {[0]}; got '{[x]}'"),
        ("$Input{a}{[-1]}", 9, "a list index is a whole number"),
        ("$Input{a}{[1}", 9, "a list index is a whole number"),
        ("$Input{a}{[]}", 9, "a list index is a whole number"),
        ("$Input", 0, "$Input needs at least 1 key ($Input{key}...), got '$Input'"),
        ("a $Session b", 2, "$Session needs at least 1 key"),
        ("$Variable{app}", 0, "$Variable needs at least 2 keys ($Variable{app}{key}...), got '$Variable{app}'"),
        ("$Constant{app}", 0, "$Constant needs at least 2 keys"),
        ("$Secret", 0, "$Secret takes exactly 1 key ($Secret{key})"),
        ("$Secret{a}{b}", 0, "$Secret takes exactly 1 key ($Secret{key}), got '$Secret{a}{b}'"),
        ("$Now{x}", 0, "$Now takes no {key} ($Now), got '$Now{x}'"),
        ("$Sequence{seq}", 0, "$Sequence needs at least 2 keys ($Sequence{sequence_tag}{event_tag}...)"),
        ("x $Nope(1)", 2, "unknown function '$Nope'"),
        ("$concat('a')", 0, "unknown function '$concat' (did you mean $Concat?)"),
        ("$Concat{x}", 0, "$Concat is a function: call it as $Concat(...)"),
        ("$Concat()", 0, "$Concat takes at least 1 argument, got 0: '$Concat()'"),
        ("$Uppercase('a', 'b')", 0, "$Uppercase takes 1 argument, got 2: '$Uppercase('a', 'b')'"),
        ("$DateAdd($Now, 1)", 0, "$DateAdd takes 3 arguments, got 2"),
        ("$Default($Input{a})", 0, "$Default takes 2 arguments, got 1"),
        ("$Concat('a'", 7, "unclosed '(' in '$Concat('a''"),
        ("$Concat(", 7, "unclosed '(' in '$Concat('"),
        ("$Concat('a',", 7, "unclosed '('"),
        ("$Concat('a',)", 12, "expected an argument"),
        ("$Concat(,)", 8, "expected an argument"),
        ("$Concat('a' 'b')", 12, "expected ',' or ')' after an argument, got \"'\""),
        ("$Concat('abc)", 8, 'unclosed string "\'abc)"'),
        ("$Concat(abc)", 8, "unexpected 'abc' (quote text: 'abc')"),
        ("$Concat(True)", 8, "unexpected 'True'"),
        ("$Concat(1-)", 8, "bad number '1-'"),
        ("$Concat(1e)", 8, "bad number '1e'"),
        # a security probe: literals past an input's numbers (a FUNCTION was given inf, and a 30-digit integer)
        ("$Default(1e309, 0)", 9, "number '1e309' must be a finite number"),
        ("$Default(0, -1e999)", 12, "number '-1e999' must be a finite number"),
        ("$Default(999999999999999999999999999999, 0)", 9, "number '999999999999999999999999999999' is beyond a"),
        ("$Default(9223372036854775808, 0)", 9, "number '9223372036854775808' is beyond a signed 64-bit integer"),
        ("$Concat(#)", 8, "unexpected '#' in arguments"),
        ("$Concat($5)", 8, "expected a placeholder or a function after '$'"),
        ("$Concat($$)", 8, "expected a placeholder or a function after '$'"),
        ("$Concat($Bogus)", 8, "unknown source '$Bogus'"),
        ("$Concat($Input{a)", 14, "unclosed '{'"),
        ("$Uppercase($Concat())", 11, "$Concat takes at least 1 argument, got 0"),
    ],
)
def test_syntax_errors_give_the_position_and_the_text(text: str, position: int, reason: str) -> None:
    with pytest.raises(PipingSyntaxError) as info:
        parse(text)
    error = info.value
    assert error.reason.startswith(reason)
    assert error.position == position
    assert error.text == text
    assert str(error) == f"{error.reason} at position {position} in {text!r}"


def test_a_long_text_is_shortened_around_the_error() -> None:
    text = "x" * 200 + "$Input{a" + "y" * 200
    with pytest.raises(PipingSyntaxError) as info:
        parse(text)
    assert info.value.position == 206
    assert info.value.reason == "unclosed '{' in '$Input{a" + "y" * 32 + "...'"
    message = str(info.value)
    assert message.endswith(" at position 206 in ...'" + "x" * 14 + "$Input{a" + "y" * 38 + "'...")


def test_syntax_errors_surface_from_resolve_references_and_check(scope: Scope) -> None:
    for call in (lambda: resolve("$Foo{x}", scope), lambda: references(["$Foo{x}"])):
        with pytest.raises(PipingSyntaxError):
            call()
    with pytest.raises(PipingSyntaxError):
        check({"a": "$Foo{x}"}, scope, sources={"Input"})


# --------------------------------------------------------------------------------------- references


def test_references_lists_everything_in_order_without_repeats() -> None:
    value = {
        "$Input{key}": "not a reference: keys are not piped",
        "to": "$Input{user}{email}",
        "body": "Hi $Session{user}{name}, at $Now, $Input{user}{email}",
        "list": ["$Input{items}{[0]}{sku}", 5, None, {"deep": "$Variable{shop}{url}"}],
        "call": "$Concat($Constant{shop}{currency}, $Default($Secret{key}, $Sequence{s}{e}{id}))",
        "escaped": "$$Input{not_a_ref}",
        "plain": "nothing",
    }
    assert references(value) == [
        Reference("Input", ("user", "email")),
        Reference("Session", ("user", "name")),
        Reference("Now", ()),
        Reference("Input", ("items", 0, "sku")),
        Reference("Variable", ("shop", "url")),
        Reference("Constant", ("shop", "currency")),
        Reference("Secret", ("key",)),
        Reference("Sequence", ("s", "e", "id")),
    ]


def test_references_of_plain_values() -> None:
    assert references({"a": 1, "b": [True, None, "x"]}) == []
    assert references("$Input{a}") == [Reference("Input", ("a",))]
    assert references(42) == []


def test_reference_is_frozen_and_prints_as_written() -> None:
    ref = Reference("Input", ("items", 0, "sku"))
    assert str(ref) == "$Input{items}{[0]}{sku}"
    assert hash(ref) == hash(Reference("Input", ("items", 0, "sku")))
    with pytest.raises(AttributeError):
        ref.source = "Session"  # type: ignore[misc]


# -------------------------------------------------------------------------------------------- check


def test_check_resolves_only_the_given_sources() -> None:
    value = {
        "to": "$Input{email}",
        "who": "$Session{user}{id}",
        "key": "$Secret{missing}",
        "when": "$DateAdd($Now, 1, 'days')",
        "bad_later": "$DateAdd('not a date', 1, 'days')",  # functions are not run by check
    }
    scope = Scope(input={"email": "a@x"})  # no session, no secrets
    check(value, scope, sources={"Input"})
    check(value, scope, sources=set())
    with pytest.raises(PipingMissingError, match=r"^\$Session{user}{id}: no session was given$") as info:
        check(value, scope, sources={"Input", "Session"})
    assert info.value.at == ("who",)
    with pytest.raises(PipingMissingError, match=r"^\$Secret{missing}: no key 'missing' in secrets$"):
        check(value, scope, sources={"Secret"})


def test_check_reports_a_missing_input_with_its_location() -> None:
    value = {"email": {"to": ["$Input{user}{email}"]}}
    with pytest.raises(PipingMissingError) as info:
        check(value, Scope(input={"user": {}}), sources={"Input"})
    assert str(info.value) == "$Input{user}{email}: no key 'email' in input.user"
    assert info.value.at == ("email", "to", 0)


def test_check_looks_inside_function_arguments() -> None:
    with pytest.raises(PipingMissingError, match="no key 'name'"):
        check("Hi $Uppercase($Concat($Input{name}, '!'))", Scope(), sources={"Input"})


def test_check_accepts_a_missing_value_where_default_expects_one() -> None:
    scope = Scope(input={"present": {"x": 1}})
    check("$Default($Input{absent}, 'fallback')", scope, sources={"Input"})
    check("$Default($Concat($Input{absent}), 'f')", scope, sources={"Input"})
    check("$Default($Session{user}, 'anonymous')", scope, sources={"Input", "Session"})
    with pytest.raises(PipingMissingError, match="no key 'also_absent'"):
        check("$Default($Input{absent}, $Input{also_absent})", scope, sources={"Input"})
    with pytest.raises(PipingError, match="it is a number"):  # not missing: a wrong path
        check("$Default($Input{present}{x}{y}, 'f')", scope, sources={"Input"})


def test_check_rejects_unknown_source_names() -> None:
    with pytest.raises(ValueError, match="unknown piping sources"):
        check("$Input{a}", Scope(input={"a": 1}), sources={"input"})


# ------------------------------------------------------------------------------------ parse caching


def test_parse_is_cached() -> None:
    text = "cache me $Input{a} $Concat('x', $Now)"
    first = parse(text)
    assert parse(text) is first
    assert parse("".join(["cache me $Input{a} ", "$Concat('x', $Now)"])) is first  # equal text, not the same str
    forget_parsed()
    assert parse(text) is not first and parse(text) == first


def test_a_long_text_is_parsed_but_never_kept() -> None:
    """A server kept every text its callers' inputs held, up to 65,536 characters each and 4,096 of them (about
    2 GiB, refused requests' too): a text longer than CACHED_TEXT is compiled each time, and the cache holds at
    most CACHED_TEXTS."""
    from ductape_jobs.piping import grammar

    forget_parsed()
    long = "🙂" * 65_000 + "$Now"
    assert parse(long) == parse(long) and parse(long) is not parse(long)
    assert grammar._cached.cache_info().currsize == 0
    short = "x" * (grammar.CACHED_TEXT - 4) + "$Now"
    assert parse(short) is parse(short)
    assert grammar._cached.cache_info().maxsize == grammar.CACHED_TEXTS <= 1024


def test_parse_merges_text_around_escapes() -> None:
    assert parse("a $$ b $Input{x}").parts == (Literal("a $ b "), Reference("Input", ("x",)))
    assert parse("").parts == ()
    assert parse("$$").is_static and not parse("$Now").is_static


# ------------------------------------------------------------------------- text without placeholders

_ALPHABET = "abcXYZ 019{}[]()'\",.\\-_\n\té€😀#%^&*"


def test_text_without_a_dollar_is_returned_unchanged_property(scope: Scope) -> None:
    rng = random.Random(20260302)
    for _ in range(500):
        text = "".join(rng.choice(_ALPHABET) for _ in range(rng.randint(0, 40)))
        assert resolve(text, scope) is text
        assert parse(text).parts == ((Literal(text),) if text else ())
        assert references(text) == []
        check(text, scope, sources={"Input", "Session"})


def test_text_with_a_dollar_but_no_placeholder_is_the_same_object(scope: Scope) -> None:
    text = "".join(["price: $", "5 {x}"])
    assert resolve(text, scope) is text


def test_non_text_scalars_are_returned_as_they_are(scope: Scope) -> None:
    marker = object()
    for value in (None, 1, 2.5, True, marker, b"$Input{a}"):
        assert resolve(value, scope) is value


@pytest.mark.parametrize(
    ("value", "found"),
    [
        ({}, False),
        ({"i": 1, "name": "plain", "tags": ["a", {"b": None}], "$key": "keys are never read"}, False),
        ({"price": "5 $"}, True),
        ({"deep": [[{"x": "$Session{user}"}]]}, True),
        (("a", ("$Now",)), True),
        ("$$", True),
    ],
)
def test_has_placeholders_is_whether_some_value_holds_a_dollar(value: Any, found: bool) -> None:
    """schedule() skips restrict/check/resolve when it is false: then they change and raise nothing."""
    assert has_placeholders(value) is found
    if not found:
        assert resolve(value, Scope()) == value
        check(value, Scope(), sources={"Session", "Input"})
