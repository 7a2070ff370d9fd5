"""Input is data, never code: a caller's input cannot read the product's secrets, variables or constants; a
value that came out of a resolution is never resolved again; ``literal()`` and ``$$`` pass placeholder-looking
text through; and secrets are masked by value in every record, log line and webhook payload."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from apikit import Api

from ductape_jobs import ConflictError, Ductape, RunPhase, ValidationError, literal
from ductape_jobs.executors.context import PipingFailure, RunPreparer
from ductape_jobs.models import JobEventTypes, Run
from support import Recorder

SIGNING = "sig-9f8e7d6c5b4a"  # the product's secret: it must never show in anything a run or the API writes
ECHO = {"name": "Echo", "tag": "echo", "event_type": "FUNCTION", "event_tag": "echo"}
SHOP_DEV = {"env": "dev", "product_tag": "shop", "event": "echo"}


def shop(**extra: Any) -> dict[str, Any]:
    return {
        "tag": "shop",
        "envs": {"dev": {"secrets": {"signing": SIGNING}, "callback_secret": "callback-secret-0123"}},
        "apps": {
            "crm": {
                "constants": {"region": "eu-west-const"},
                "envs": {"dev": {"base_url": "http://127.0.0.1:9", "variables": {"tenant": "tenant-var-77"}}},
            }
        },
        **extra,
    }


@pytest.fixture
def echo(dt: Ductape) -> Ductape:
    dt.products.add(shop())
    dt.function("echo")(lambda input, ctx: input)
    dt.job.create(ECHO)
    return dt


def only_run(dt: Ductape, job_id: str) -> Run:
    (run,) = dt.job.runs(job_id=job_id)
    return dt.job.run(run.id)


# ------------------------------------------------------------------------------ the caller's grammar


@pytest.mark.parametrize(
    "text",
    ["$Secret{signing}", "Hello $Secret{signing}", "$Variable{crm}{tenant}", "$Constant{crm}{region}",
     "$Concat('x', $Secret{signing})", "$Input{name}"],
)  # fmt: skip
def test_a_schedule_input_cannot_read_the_products_definitions(echo: Ductape, text: str) -> None:
    with pytest.raises(ValidationError) as caught:
        echo.job.schedule({**SHOP_DEV, "input": {"user": {"name": text}}})
    assert caught.value.field == "input.user.name"
    assert "cannot be used here" in caught.value.rule and "literal()" in caught.value.rule
    assert echo.job.list() == []  # nothing written


def test_the_api_refuses_a_secret_placeholder_from_a_product_limited_key(api: Api) -> None:
    api.dt.products.add(shop())
    api.dt.function("echo")(lambda input, ctx: input)
    api.dt.job.create(ECHO)
    c = api.client(api.key("shop-dev", product_tag="shop", env="dev"))
    answer = c.post("/schedule", json={**SHOP_DEV, "input": {"name": "$Secret{signing}"}})
    assert answer.status_code == 422
    (problem,) = answer.json()["detail"]
    assert problem["field"] == "input.name" and "$Secret cannot be used here" in problem["rule"]
    assert c.get("/schedules").json()["items"] == []
    # The same text as data ($$ is a literal $) runs, and the run shows the text, never the secret.
    job_id = c.post("/schedule", json={**SHOP_DEV, "input": {"name": "$$Secret{signing}"}}).json()["job_id"]
    api.dt.drain()
    runs = c.get("/runs", params={"job_id": job_id}).text
    assert "$Secret{signing}" in runs and SIGNING not in runs


def test_session_and_now_stay_readable_in_a_schedule_input(echo: Ductape) -> None:
    job_id = echo.job.schedule({**SHOP_DEV, "input": {"at": "$Now", "up": "$Uppercase('x')"}}).job_id
    echo.drain()
    run = only_run(echo, job_id)
    assert run.phase is RunPhase.COMPLETED
    assert run.output == {"at": run.output["at"], "up": "X"} and run.output["at"].startswith("2026-03-02T12:00")


def test_literal_passes_placeholder_text_through_as_data(echo: Ductape) -> None:
    text = {"name": "$Secret{signing}", "list": ["$Now", "cost: $5"], "n": 3}
    job_id = echo.job.schedule({**SHOP_DEV, "input": literal(text)}).job_id
    echo.drain()
    assert only_run(echo, job_id).output == text


def test_a_stored_input_that_skipped_the_door_still_cannot_read_a_secret(echo: Ductape) -> None:
    """Inputs stored before this rule (or written around ``schedule()``) are held to it when they run."""
    run = Run(
        id="run-1", job_id="job-1", job_tag="echo", product_tag="shop", env="dev",
        event_type=JobEventTypes.FUNCTION, event_tag="echo", phase=RunPhase.RUNNING,
        scheduled_at=echo.clock.now(), input={"name": "$Secret{signing}"}, max_retries=0,
    )  # fmt: skip
    prepare = RunPreparer(echo.products, echo.clock)
    with pytest.raises(PipingFailure) as caught:
        prepare(run)
    assert str(caught.value).startswith("input.name: $Secret{signing}: $Secret cannot be used here")
    assert SIGNING not in str(caught.value)


def test_end_user_text_in_a_notification_stays_text(dt: Ductape, receiver: Recorder) -> None:
    """An app that passes an end user's name into ``input`` (as ``literal``) cannot be made to send a secret."""
    callback = {"url": receiver.url + "/hook", "body": {"greeting": "Hello $Input{name}"}}
    dt.products.add(shop(notifications={"welcome": {"callback": callback}}))
    dt.job.create({"name": "Welcome", "tag": "welcome", "event_type": "NOTIFICATION", "event_tag": "welcome"})
    request = {"env": "dev", "product_tag": "shop", "event": "welcome"}
    with pytest.raises(ValidationError):
        dt.job.schedule({**request, "input": {"name": "$Secret{signing}"}})
    job_id = dt.job.schedule({**request, "input": literal({"name": "$Secret{signing}"})}).job_id
    dt.drain()
    assert only_run(dt, job_id).phase is RunPhase.COMPLETED
    (seen,) = receiver.seen
    assert seen.json()["greeting"] == "Hello $Secret{signing}"
    assert SIGNING.encode() not in seen.body


def test_a_feature_input_piped_into_a_job_event_is_never_resolved_again(dt: Ductape) -> None:
    feature = {
        "input": {"name": "string"},
        "sequence": [
            {"sequence_tag": "direct",
             "events": [{"type": "FUNCTION", "event": "echo", "input": {"n": "$Input{name}"}}]},
            {"sequence_tag": "later", "events": [{"type": "JOB", "event": "echo", "input": {"n": "$Input{name}"}}]},
        ],
    }  # fmt: skip
    dt.products.add(shop(features={"greet": feature}))
    dt.function("echo")(lambda input, ctx: input)
    dt.job.create(ECHO)
    run = dt.feature.run("greet", env="dev", product_tag="shop", input={"name": "$Secret{signing}"})
    assert run.output == {"direct": {"echo": {"n": "$Secret{signing}"}}}
    (job_event,) = [e for e in run.events if e.event_type == "job"]
    assert job_event.job_id is not None
    dt.drain()
    job_run = only_run(dt, job_event.job_id)
    assert job_run.phase is RunPhase.COMPLETED
    assert job_run.output == {"n": "$Secret{signing}"}


# ------------------------------------------------------------------------------ secrets masked by value


def test_a_secret_in_an_error_or_output_is_masked_everywhere(
    api: Api, receiver: Recorder, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    dt = api.dt
    dt.products.add(shop())

    @dt.function("leaky")
    def leaky(input: dict[str, Any], ctx: Any) -> Any:
        if input.get("fail"):
            raise RuntimeError(f"upstream refused token {SIGNING} (quoted: {json.dumps(SIGNING)})")
        return {"echoed": f"Authorization: {SIGNING}", "nested": [SIGNING]}

    dt.job.create({"name": "Leaky", "tag": "leaky", "event_type": "FUNCTION", "event_tag": "leaky"})
    c = api.client()
    hook = {"product_tag": "shop", "url": receiver.url + "/hook", "events": ["job.failed", "job.completed"]}
    assert c.post("/webhooks", json=hook).status_code == 201
    failing = dt.job.schedule({"env": "dev", "product_tag": "shop", "event": "leaky", "input": {"fail": True}})
    working = dt.job.schedule({"env": "dev", "product_tag": "shop", "event": "leaky"})
    dt.drain()
    failed, done = only_run(dt, failing.job_id), only_run(dt, working.job_id)
    assert failed.phase is RunPhase.FAILED and "upstream refused token [secret]" in (failed.error or "")
    assert done.output == {"echoed": "Authorization: [secret]", "nested": ["[secret]"]}
    api.dt.webhooks.flush()
    asyncio.run(api.dt.webhooks.deliver_due())
    assert len(receiver.seen) == 2
    texts = [s.body.decode() for s in receiver.seen]
    texts += [c.get(path).text for path in ("/runs", f"/runs/{failed.id}", f"/runs/{done.id}")]
    texts += [r.getMessage() + (r.exc_text or "") for r in caplog.records]
    assert any("[secret]" in text for text in texts)
    assert not [text for text in texts if SIGNING in text]


def test_a_secret_from_the_environment_is_masked_once_a_run_reads_it(
    dt: Ductape, monkeypatch: pytest.MonkeyPatch
) -> None:
    dt.products.add(
        {"tag": "shop", "envs": {"dev": {"secrets": {"api": "${SHOP_API_KEY}"}}},
         "features": {"f": {"sequence": [{"sequence_tag": "a", "events": [
             {"type": "FUNCTION", "event": "boom", "input": {"key": "$Secret{api}"}}]}]}}}
    )  # fmt: skip
    monkeypatch.setenv("SHOP_API_KEY", "env-secret-31337")  # set after the product was added
    dt.function("boom")(lambda input, ctx: (_ for _ in ()).throw(RuntimeError(f"bad key {input['key']}")))
    run = dt.feature.run("f", env="dev", product_tag="shop")
    (event,) = run.events
    assert event.error is not None and "bad key [secret]" in event.error and "env-secret-31337" not in event.error


def test_short_values_are_not_masked(dt: Ductape) -> None:
    """A secret shorter than MIN_LENGTH would mask ordinary words; it is left alone (documented)."""
    dt.products.add({"tag": "shop", "envs": {"dev": {"secrets": {"pin": "abc"}}}})
    assert dt.products.secrets.mask_text("abc abcd") == "abc abcd"
    assert dt.products.secrets.mask({"k": ["x"]}) == {"k": ["x"]}


# ------------------------------------------------------------------------------------------ limits


def nested(depth: int) -> dict[str, Any]:
    root: dict[str, Any] = {}
    node = root
    for _ in range(depth - 1):
        node["a"] = {}
        node = node["a"]
    return root


def problems(answer: Any) -> list[str]:
    assert answer.status_code == 422, answer.text
    return [p["field"] for p in answer.json()["detail"]]


def test_inputs_and_numbers_beyond_the_limits_answer_422_and_write_nothing(api: Api, job: dict[str, Any]) -> None:
    c = api.client()
    base = {"env": "prd", "product_tag": "shop", "event": "report"}
    assert problems(c.post("/schedule", json={**base, "input": nested(900)}))[0].startswith("input.a.a.a")
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    assert problems(c.post("/schedule", content=deep, headers={"Content-Type": "application/json"})) == ["body"]
    for field, digits in [("retries", "9" * 5000), ("start_at", "9" * 5000), ("input.n", "-" + "9" * 5000)]:
        # more digits than Python converts: the field is named with its rule, as the Python API names it (it was
        # "body: is not valid JSON: Exceeds the limit (4300 digits)...; use sys.set_int_max_str_digits()")
        name, _, key = field.partition(".")
        value = f'{{"{key}": {digits}}}' if key else digits
        huge = f'{{"env": "prd", "product_tag": "shop", "event": "report", "{name}": {value}}}'
        answer = c.post("/schedule", content=huge, headers={"Content-Type": "application/json"})
        assert problems(answer) == [field], answer.text
        assert "set_int_max_str_digits" not in answer.text
    assert problems(c.post("/schedule", json={**base, "retries": 10**30})) == ["retries"]
    assert problems(c.post("/schedule", json={**base, "repeat": {"every": 3e14}})) == ["repeat.every"]
    assert problems(c.post("/schedule", json={**base, "timeout": 10**17})) == ["timeout"]
    assert problems(c.post("/schedule", json={**base, "input": {"s": "x" * 70_000}})) == ["input.s"]
    assert problems(c.post("/schedule", json={**base, "input": {"n": 2**70}})) == ["input.n"]
    for field in ("executions", "intervals"):
        assert problems(c.post("/jobs", json={**job, "tag": "j2", field: 10**23})) == [field]
    for path in ("/runs", "/schedules"):
        assert problems(c.get(path, params={"offset": 2**63})) == ["offset"]
    assert problems(c.post("/preview", json={"repeat": {"every": 1000}, "start": "9999-12-31"})) == ["start"]
    assert c.get("/schedules").json()["items"] == [] and [j["tag"] for j in c.get("/jobs").json()["items"]] == [
        "report"
    ]


def test_a_body_over_the_limit_answers_413(api: Api, job: dict[str, Any]) -> None:
    c = api.client()
    big = {"env": "prd", "product_tag": "shop", "event": "report", "input": {"blob": "x" * (2 * 1024 * 1024)}}
    answer = c.post("/schedule", json=big)
    assert answer.status_code == 413  # in words a user has, not the name of a constant in the code
    assert (
        answer.json()["detail"] == "the request body is larger than 1,048,576 bytes; send less (a large batch in parts)"
    )

    def chunks() -> Iterator[bytes]:  # no Content-Length: the bound holds on the stream too
        yield b'{"env": "prd", "product_tag": "shop", "event": "report", "input": {"blob": "'
        for _ in range(40):
            yield b"x" * 65536
        yield b'"}}'

    streamed = c.post("/schedule", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert c.get("/schedules").json()["items"] == []


def test_the_largest_allowed_input_round_trips(api: Api, job: dict[str, Any]) -> None:
    c = api.client()
    base = {"env": "prd", "product_tag": "shop", "event": "report", "start_at": "2030-01-01T00:00:00Z"}
    deepest = nested(32)
    made = c.post("/schedule", json={**base, "input": deepest})
    assert made.status_code == 201, made.text
    job_id = made.json()["job_id"]
    assert c.get(f"/schedules/{job_id}").json()["input"] == deepest
    assert c.post(f"/schedules/{job_id}/cancel", json={}).status_code == 200
    assert api.dt.job.get(job_id).status.value == "cancelled"
    assert problems(c.post("/schedule", json={**base, "input": nested(33)}))


def test_every_number_has_a_bound_in_python_too(dt: Ductape) -> None:
    dt.function("report")(lambda input, ctx: None)
    dt.job.create({"name": "R", "tag": "report", "event_type": "FUNCTION", "event_tag": "report"})
    base = {"env": "prd", "product_tag": "shop", "event": "report"}
    cases = {
        "repeat.limit": {"repeat": {"every": 1000, "limit": 10**12}},
        "repeat.endDate": {"repeat": {"every": 1000, "endDate": "9500-01-01"}},
        "start_at": {"start_at": 10**15 * 1000},
        "input": {"input": nested(40)},
        "reason": None,
    }
    for field, extra in cases.items():
        if extra is None:
            continue
        with pytest.raises(ValidationError) as caught:
            dt.job.schedule({**base, **extra})
        assert caught.value.field.startswith(field), caught.value
    job_id = dt.job.schedule(base).job_id
    with pytest.raises(ValidationError, match="reason"):
        dt.job.cancel(job_id, reason="x" * 5000)
    assert dt.job.get(job_id).status.value != "cancelled"
    with pytest.raises(ValidationError, match="offset"):
        dt.job.list(offset=2**63)
    assert dt.job.preview({"every": 300_000_000_000}, start="8999-06-01", count=50) == [
        dt.job.preview({"every": 300_000_000_000}, start="8999-06-01", count=1)[0]
    ]  # the series ends at the latest time the engine takes instead of overflowing
    assert timedelta(milliseconds=300_000_000_000) < timedelta(days=3660)


def test_a_session_claim_that_looks_like_a_placeholder_stays_data(dt: Ductape) -> None:
    dt.products.add(
        shop(
            envs={"dev": {"secrets": {"signing": SIGNING}, "session_secret": "session-secret-for-tests-0123456789ab"}},
            sessions={"user-session": {"name": "User", "schema": {"user": "object"}, "selector": "$Session{user}{id}"}},
        )
    )
    dt.function("echo")(lambda input, ctx: input)
    dt.job.create(ECHO)
    token = dt.session.start("user-session", {"user": {"id": "u1", "name": "$Secret{signing}"}}, env="dev",
                             product_tag="shop")  # fmt: skip
    job_id = dt.job.schedule({**SHOP_DEV, "session": str(token), "input": {"who": "$Session{user}{name}"}}).job_id
    dt.drain()
    assert only_run(dt, job_id).output == {"who": "$Secret{signing}"}


# ------------------------------------------------------------------ found by probing the fix as an attacker


def test_a_stored_feature_event_input_may_not_read_a_secret(dt: Ductape) -> None:
    """A JOB or FEATURE event's input is stored (the job's schedule, the child feature run): a secret never is."""
    for kind, event in (("JOB", "echo"), ("FEATURE", "inner")):
        feature = {"sequence": [{"sequence_tag": "a", "events": [
            {"type": kind, "event": event, "input": {"token": "Bearer $Secret{signing}"}}]}]}  # fmt: skip
        inner = {"sequence": [{"sequence_tag": "b", "events": [{"type": "FUNCTION", "event": "echo"}]}]}
        with pytest.raises(ValidationError) as caught:
            dt.products.add(shop(features={"outer": feature, "inner": inner}))
        assert caught.value.field == "products.shop.features.outer.sequence[0].events[0].input.token"
        assert "a secret never is" in caught.value.rule


def test_a_secret_piped_from_an_earlier_output_is_masked_in_what_is_stored(dt: Ductape) -> None:
    feature = {"sequence": [
        {"sequence_tag": "a", "events": [{"type": "FUNCTION", "event": "sign", "input": {"key": "$Secret{signing}"}}]},
        {"sequence_tag": "b", "parents": ["a"], "events": [
            {"type": "JOB", "event": "echo", "input": {"got": "$Sequence{a}{sign}{key}"}}]},
    ]}  # fmt: skip
    dt.products.add(shop(features={"f": feature}))
    dt.function("sign")(lambda input, ctx: {"key": input["key"]})
    dt.function("echo")(lambda input, ctx: input)
    dt.job.create(ECHO)
    run = dt.feature.run("f", env="dev", product_tag="shop")
    (job_event,) = [e for e in run.events if e.event_type == "job"]
    stored = dt.job.get(job_event.job_id or "")
    assert stored.input == {"got": "[secret]"} and SIGNING not in json.dumps(run.output)


def test_an_action_input_may_not_set_framing_or_routing_headers(dt: Ductape, receiver: Recorder) -> None:
    actions = {"ping": {"method": "POST", "path": "/ping"}}
    product = shop()
    product["apps"]["crm"].update(actions=actions)
    product["apps"]["crm"]["envs"]["dev"]["base_url"] = receiver.url
    dt.products.add(product)
    dt.job.create({"name": "Ping", "tag": "ping", "event_type": "ACTION", "event_tag": "crm:ping"})
    request = {"env": "dev", "product_tag": "shop", "event": "ping"}
    for name in ("Host", "content-length", "Transfer-Encoding", "Connection"):
        with pytest.raises(ValidationError) as caught:
            dt.job.schedule({**request, "input": {"headers": {name: "x"}}})
        assert caught.value.field == f"input.headers.{name}"
    job_id = dt.job.schedule({**request, "input": {"headers": {"X-Trace": "t-1"}}}).job_id
    dt.drain()
    assert only_run(dt, job_id).phase is RunPhase.COMPLETED and receiver.last.headers["x-trace"] == "t-1"


def test_what_the_probe_broke_is_refused_in_words(echo: Ductape) -> None:
    with pytest.raises(ValidationError) as caught:  # was a RecursionError
        echo.job.schedule({**SHOP_DEV, "input": {"a": "$Uppercase(" * 500 + "'x'" + ")" * 500}})
    assert caught.value.field == "input.a" and "nest deeper than 32" in caught.value.rule
    greet = {"sequence": [{"sequence_tag": "a", "events": [{"type": "FUNCTION", "event": "echo"}]}]}
    echo.products.add(shop(features={"greet": greet}))
    for garbage in ("garbage", "", ":x", "user-session:"):
        with pytest.raises(ValidationError) as caught:  # was pydantic's own error
            echo.feature.run("greet", env="dev", product_tag="shop", session=garbage)
        assert caught.value.field == "session", garbage
    with pytest.raises(ValidationError) as caught:
        echo.job.schedule({**SHOP_DEV, "repeat": {"every": 1}})
    assert caught.value.field == "repeat.every" and "at least 100" in caught.value.rule
    with pytest.raises(ValidationError) as caught:
        echo.job.schedule({**SHOP_DEV, "input": {"n": 2**63}})
    assert caught.value.field == "input.n"
    # the size is counted in UTF-8 bytes (120,000 here), not in ASCII-escaped JSON (360,000)
    assert echo.job.schedule({**SHOP_DEV, "start_at": "2030-01-01", "input": {"s": "é" * 60_000}}).job_id
    with pytest.raises(ValidationError) as caught:
        echo.job.schedule({**SHOP_DEV, "input": {k: "é" * 50_000 for k in "abc"}})
    assert caught.value.field == "input" and "at most 262144" in caught.value.rule
    with pytest.raises(ValidationError) as caught:
        echo.job.schedule_many([SHOP_DEV] * 10_001)
    assert caught.value.field == "requests"
    made = echo.job.schedule({**SHOP_DEV, "repeat": {"every": 60_000}}).job_id
    echo.job.cancel(made)
    with pytest.raises(ConflictError, match="cancelled"):
        echo.job.trigger(made)


def test_a_run_is_masked_with_its_own_products_secrets_only(echo: Ductape) -> None:
    """Masking must not tell a caller of one product whether a guess is another product's secret."""
    echo.products.add({"tag": "corp", "envs": {"dev": {"secrets": {"key": "corp-secret-6666"}}}})
    guesses = {"own": SIGNING, "other": "corp-secret-6666"}
    job_id = echo.job.schedule({**SHOP_DEV, "input": guesses}).job_id
    echo.drain()
    assert only_run(echo, job_id).output == {"own": "[secret]", "other": "corp-secret-6666"}
