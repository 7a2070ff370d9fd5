"""Names hold no control character: a job's name and event tag, a schedule's env, product tag, app and cache, a
pause's or a cancel's reason, an API key's name and env, a webhook's product tag, a product's tag given in code.
Each refuses C0 (newline and tab too), DEL and C1 with a ``ValidationError`` naming the field and the rule, over
HTTP a 422 saying the same, and writes nothing. They were stored as given (any API write key could set them),
and an ESC in one drove the terminal of whoever listed them with ``ductape``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from apikit import JOB, SHOP, Api, problems

from ductape_jobs import Ductape, ScheduleStatus, ValidationError

#: ESC, BEL, newline, tab, DEL, C1's CSI, NUL, a right-to-left override, a left-to-right isolate, a line separator:
#: each inside the text (a name is stripped at its ends).
CONTROLS = ["\x1b", "\x07", "\n", "\t", "\x7f", "\x9b", "\x00", "\u202e", "\u2066", "\u2028"]
HOOK = {"url": "http://127.0.0.1:9/x", "events": ["job.paused"]}


def rule(char: str) -> str:
    return f"holds a control character (U+{ord(char):04X}"  # and its name, for the common ones


def counts(dt: Ductape) -> tuple[int, int, int, int]:
    return len(dt.job.list()), len(dt.job.fetch_all()), len(dt.webhooks.list()), len(api_keys(dt))


def api_keys(dt: Ductape) -> list[Any]:
    from ductape_jobs.apikeys import ApiKeys

    return ApiKeys(dt.store, dt.clock).list()


def python_calls(dt: Ductape, bad: str) -> list[tuple[str, Callable[[], object]]]:
    from ductape_jobs.apikeys import ApiKeys

    job_id = dt.job.list()[0].id
    keys = ApiKeys(dt.store, dt.clock)
    return [
        ("name", lambda: dt.job.create({**JOB, "tag": "other", "name": f"Re{bad}port"})),
        ("event_tag", lambda: dt.job.create({**JOB, "tag": "other", "event_tag": f"re{bad}port"})),
        ("name", lambda: dt.job.update("report", {"name": f"Re{bad}port"})),
        ("event_tag", lambda: dt.job.update("report", {"event_tag": f"re{bad}port"})),
        ("env", lambda: dt.job.schedule({**SHOP, "env": f"p{bad}rd"})),
        ("product_tag", lambda: dt.job.schedule({**SHOP, "product_tag": f"sh{bad}op"})),
        ("app", lambda: dt.job.schedule({**SHOP, "app": f"a{bad}pp"})),
        ("cache", lambda: dt.job.schedule({**SHOP, "cache": f"c{bad}ache"})),
        ("reason", lambda: dt.job.pause(job_id, reason=f"stop{bad}now")),
        ("reason", lambda: dt.job.cancel(job_id, reason=f"stop{bad}now")),
        ("name", lambda: keys.create(f"o{bad}ps")),
        ("env", lambda: keys.create("ops", env=f"p{bad}rd")),
        ("product_tag", lambda: dt.webhooks.create({**HOOK, "product_tag": f"sh{bad}op"})),
    ]


@pytest.mark.parametrize("bad", CONTROLS, ids=[f"U+{ord(c):04X}" for c in CONTROLS])
def test_a_control_character_in_a_name_is_refused_naming_the_field_and_nothing_is_written(api: Api, bad: str) -> None:
    dt = api.dt
    dt.job.create(JOB)
    job_id = dt.job.schedule({**SHOP, "repeat": {"cron": "0 9 * * *"}}).job_id
    before, schedule = counts(dt), dt.job.get(job_id)
    for field, call in python_calls(dt, bad):
        with pytest.raises(ValidationError) as refused:
            call()
        assert refused.value.field == field, (field, refused.value)
        assert refused.value.rule.startswith(rule(bad)) and "printable text" in refused.value.rule
    assert counts(dt) == before
    assert dt.job.get(job_id) == schedule and dt.job.fetch("report").name == JOB["name"]


def test_joiners_marks_and_right_to_left_scripts_are_names(dt: Ductape) -> None:
    """What right-to-left scripts and emoji need is not a control character: a zero-width joiner (an emoji family),
    a zero-width non-joiner (Persian), the right-to-left mark, Hebrew."""
    dt.job.create(JOB)
    for name in [
        "Family \U0001f468\u200d\U0001f469\u200d\U0001f467",
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645",
        "\u05d3\u05d5\u05d7\u200f 1",
    ]:
        assert dt.job.update("report", {"name": name}).name == name


def test_a_tag_given_in_code_holds_no_trailing_newline(dt: Ductape) -> None:
    """``re.match``'s ``$`` matches before a final newline: ``product("shop\\n")`` was taken as a product's tag, and
    ``function("report\\n")`` as a function's."""
    with pytest.raises(ValidationError) as refused:
        dt.product("shop\n")
    assert refused.value.field == "product_tag"
    with pytest.raises(ValidationError) as refused:
        dt.function("report\n")(lambda input, ctx: None)
    assert refused.value.field == "tag"


@pytest.mark.parametrize("bad", ["\x1b", "\n", "\x9b"], ids=["ESC", "LF", "CSI"])
def test_over_http_a_control_character_in_a_name_answers_422_naming_it_and_writes_nothing(api: Api, bad: str) -> None:
    c = api.client()
    assert c.post("/jobs", json=JOB).status_code == 201
    job_id = c.post("/schedule", json={**SHOP, "repeat": {"cron": "0 9 * * *"}}).json()["job_id"]
    before = counts(api.dt)
    answers = [
        ("name", c.post("/jobs", json={**JOB, "tag": "other", "name": f"Re{bad}port"})),
        ("name", c.patch("/jobs/report", json={"name": f"Re{bad}port"})),
        ("env", c.post("/schedule", json={**SHOP, "env": f"p{bad}rd"})),
        ("product_tag", c.post("/schedule", json={**SHOP, "product_tag": f"sh{bad}op"})),
        ("reason", c.post(f"/schedules/{job_id}/pause", json={"reason": f"stop{bad}now"})),
        ("reason", c.post(f"/schedules/{job_id}/cancel", json={"reason": f"stop{bad}now"})),
        ("product_tag", c.post("/webhooks", json={**HOOK, "product_tag": f"sh{bad}op"})),
    ]
    for field, answer in answers:
        [(named, said)] = problems(answer)
        assert named == field and said.startswith(rule(bad)), (field, answer.text)
    assert counts(api.dt) == before
    assert api.dt.job.get(job_id).status == ScheduleStatus.ACTIVE and api.dt.job.fetch("report").name == JOB["name"]
