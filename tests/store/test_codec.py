"""The codec's fast paths read stored values exactly as the plain ones did: JSON text through msgspec's decoder
(``json`` for what msgspec refuses), enum members by lookup, SQLite rows as dicts with their names found by the
statement's description."""

from __future__ import annotations

import json
import math
import sqlite3
from typing import Any

import pytest

from ductape_jobs.models import JobEventTypes, Misfire, Overlap, RunPhase, ScheduleStatus, TriggeredBy
from ductape_jobs.store.codec import _members, loads
from ductape_jobs.store.sqlite.dialect import _dict_row

TEXTS = [
    '{"i":0}',
    '{"a":[1,2.5,"x",null,true,false],"b":{"c":"\\u00e9\\ud83d\\ude00"}}',
    '{"big":123456789012345678901234567890,"neg":-9223372036854775809}',
    '{"n":19781537243107539060,"m":-19781537243107539060}',  # msgspec before 0.19 wrapped these (modulo 2**64)
    '{"z":-0.0,"tiny":5e-324,"max":1.7976931348623157e308}',
    '{"a":1,"a":2}',
    # msgspec refuses these; the json module reads them (dumps writes NaN and Infinity, a lone surrogate escaped)
    '{"nan":NaN,"inf":Infinity,"ninf":-Infinity}',
    '{"over":1e400}',
    '"\\ud800 alone"',
    '"\udce9 unescaped"',  # a str holding a lone surrogate itself: msgspec cannot encode it to read it
]


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and (a == b and str(a) == str(b))


@pytest.mark.parametrize("text", TEXTS)
def test_stored_json_decodes_to_what_the_json_module_reads(text: str) -> None:
    assert _same(loads(text), json.loads(text))


def test_text_that_is_not_json_is_refused_as_the_json_module_refuses_it() -> None:
    with pytest.raises(json.JSONDecodeError):
        loads('{"a":')


@pytest.mark.parametrize("cls", [JobEventTypes, RunPhase, TriggeredBy, ScheduleStatus, Misfire, Overlap])
def test_enum_lookups_give_the_members_and_refuse_other_values(cls: Any) -> None:
    member = _members(cls)
    assert all(member(m.value) is m for m in cls)
    with pytest.raises(ValueError, match="is not a valid"):
        member("no such value")


def test_rows_of_statements_read_in_turn_keep_their_own_column_names() -> None:
    db = sqlite3.connect(":memory:")
    db.row_factory = _dict_row
    db.execute("CREATE TABLE a (x, y)")
    db.execute("CREATE TABLE b (p, q, r)")
    db.executemany("INSERT INTO a VALUES (?, ?)", [(1, 2), (3, 4)])
    db.executemany("INSERT INTO b VALUES (?, ?, ?)", [(5, 6, 7), (8, 9, 10)])
    one, two = db.execute("SELECT * FROM a"), db.execute("SELECT r, p FROM b")
    assert one.fetchone() == {"x": 1, "y": 2}
    assert two.fetchone() == {"r": 7, "p": 5}
    assert one.fetchone() == {"x": 3, "y": 4}
    assert two.fetchone() == {"r": 10, "p": 8}
    assert db.execute("SELECT y AS renamed FROM a ORDER BY x DESC").fetchall() == [{"renamed": 4}, {"renamed": 2}]


@pytest.mark.parametrize(
    ("value", "mended"),
    [
        ({"say": "hi \U0001f600"}, False),  # an emoji: its escaped pair is no lone surrogate
        ({"k": "\ud83d\ude00 and \U0001f389"}, False),  # a pair given as two halves joins
        ({"k": "a\ud800b"}, True),
        ({"k": "a\udc00b"}, True),
        ({"k": "\ud800\U0001f600"}, True),  # a high half before a pair
        ({"k": "\U0001f600\udc00"}, True),  # a low half after one
        ({"\udce9": 1}, True),
        ({"k": "\\ud800\udc00"}, True),  # text "\ud800", then a lone low half: no pair
        ({"k": "\\\ud800"}, True),  # a backslash, then a lone high half
    ],
)
def test_stored_json_walks_an_output_only_for_a_lone_surrogate(
    value: Any, mended: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An output with an emoji was encoded and walked twice: its JSON escapes the emoji as a surrogate pair, which
    the check for a lone surrogate took for one. Every output stored is UTF-8 text either way."""
    from ductape_jobs.store import codec

    walked: list[Any] = []
    real = codec._mended
    monkeypatch.setattr(codec, "_mended", lambda v: walked.append(v) or real(v))
    text = codec.stored_json(value)
    text.encode("utf-8")
    json.loads(text)  # valid JSON
    assert bool(walked) is mended
    if not mended:
        assert text == codec.dumps(value)  # as encoded once


def test_every_output_stored_reads_back_as_utf8_text() -> None:
    """Every string of up to four pieces (a backslash, the text ``ud800``/``udc00``, each lone half, an emoji, a
    pair given as halves): what is stored decodes to text UTF-8 can encode, or the HTTP API answers 500 for it."""
    import itertools

    from ductape_jobs.store import codec

    pieces = ["\\", "u", "ud800", "udc00", "\ud800", "\udc00", "\U0001f600", "\ud83d\ude00", "x"]
    for n in range(1, 5):
        for combo in itertools.product(pieces, repeat=n):
            text = "".join(combo)
            for value in (text, {text: text}):
                stored = loads(codec.stored_json(value))
                for shown in stored if isinstance(stored, str) else [*stored, *stored.values()]:
                    shown.encode("utf-8")
