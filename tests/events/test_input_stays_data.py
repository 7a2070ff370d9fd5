"""What a run sends and keeps when a caller's input, an app's answer or the environment holds what looks like code
or a secret (a probe of the executors): each case here failed before its fix.

- A value fills one segment of an ACTION's path: ``..`` in ``params`` stepped out of the action's path with the
  app's auth (httpx resolves dot segments), and ``$Input{...}`` piped into a path was sent unencoded.
- A secret an app echoes is masked before any cut: the error's start of the body (500 characters), the error's own
  bound and a body past 64 KiB were cut first, so a caller padding the request read a secret but its tail.
- ``${VAR}`` values are data: a password holding ``$$`` or ``$Now`` was read as piping.
- A product's cache keeps the output as the run does: masked.
- A feature's JOB event stores its input masked when a secret in it holds a ``$``.
- An input header is checked at ``schedule()``: a line break, NUL, a name with a space.
- A credential header's value (``X-Api-Key``, ``Authorization``'s token alone) is a secret; ``X-Cache-Key``'s not.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ductape_jobs import Ductape, FakeClock, RunPhase, ValidationError
from ductape_jobs.executors.http import MAX_BODY_BYTES
from ductape_jobs.products import Products
from support import Recorder

TOKEN = "tok-SECRET-abcdef1234567890"


def product(http: str) -> dict[str, Any]:
    return {
        "tag": "bank",
        "envs": {
            "dev": {
                "secrets": {"signing": "${PROBE_SIGNING}", "pin": "${PROBE_PIN}"},
                "smtp": {"host": "127.0.0.1", "port": 9, "sender": "Bank <bank@example.com>"},
            }
        },
        "notifications": {"free": {"email": True}},
        "apps": {
            "api": {
                "envs": {
                    "dev": {
                        "base_url": f"{http}/api",
                        "auth": {"kind": "bearer", "token": "${PROBE_TOKEN}"},
                        "headers": {
                            "X-Api-Key": "${PROBE_KEY}",
                            "X-Request-Kind": "jobs",
                            "X-Cache-Key": "orders",
                            "X-Upstream-Authorization": "Token ${HDR_TOKEN}",
                            "X-Label": "café",
                            "X-Auth-Key": "${PROBE_AUTH_KEY}",
                            "Idempotency-Key": "static-value",
                        },
                    }
                },
                "actions": {
                    "cancel": {"method": "DELETE", "path": "/accounts/:account/subscriptions/:sub"},
                    "profile": {"method": "GET", "path": "/users/$Input{user}/profile"},
                    "echo": {"method": "GET", "path": "/echo"},
                    "sign": {"method": "POST", "path": "/sign", "body": {"key": "$Secret{signing}"}},
                },
            },
            "basic": {
                "envs": {"dev": {"base_url": http, "auth": {"kind": "basic", "username": "svc", "password": "${PW}"}}},
                "actions": {"get": {"method": "GET", "path": "/x"}},
            },
            "inurl": {  # credentials in the base URL: a password from the environment, a key written in the query
                "envs": {
                    "dev": {
                        "base_url": http.replace("//", "//robot:${URL_PW}@")
                        + "/v1?api_key=Literal-KEY-5678&use_token=true&sort_key=created"
                    }
                },
                "actions": {"get": {"method": "GET", "path": "/x"}},
            },
            "badurl": {
                "envs": {"dev": {"base_url": "htps//robot:Literal-PW-1234@example.com"}},
                "actions": {"get": {}},
            },
            "secretbasic": {  # the password a $Secret: known only as the run resolves it
                "envs": {
                    "dev": {
                        "base_url": http,
                        "auth": {"kind": "basic", "username": "svc", "password": "$Secret{signing}"},
                    }
                },
                "actions": {"get": {"method": "GET", "path": "/x"}},
            },
        },
        "caches": {"short": {"expiry": 60_000}},
        "features": {
            "relay": {
                "input": {},
                "sequence": [
                    {"sequence_tag": "s1", "events": [{"type": "ACTION", "event": "api:sign", "input": {}}]},
                    {
                        "sequence_tag": "s2",
                        "parents": ["s1"],
                        "events": [{"type": "JOB", "event": "follow", "input": {"echoed": "$Sequence{s1}{api:sign}"}}],
                    },
                ],
            }
        },
    }


@pytest.fixture
def dt(tmp_path: Path, http: Recorder, monkeypatch: pytest.MonkeyPatch) -> Iterator[Ductape]:
    monkeypatch.setenv("PROBE_TOKEN", TOKEN)
    monkeypatch.setenv("PROBE_SIGNING", "Sup3r$ecretPw")
    monkeypatch.setenv("PW", "Pa$$w0rd$Now-2024!")
    monkeypatch.setenv("PROBE_KEY", "key-LIVE-0123456789")
    monkeypatch.setenv("HDR_TOKEN", "hdr-token-9876")
    monkeypatch.setenv("PROBE_AUTH_KEY", "cf-key-55555")
    monkeypatch.setenv("PROBE_PIN", "987654321")
    monkeypatch.setenv("URL_PW", "url-Pw-4444")
    client = Ductape(
        f"sqlite:///{tmp_path / 'jobs.db'}",
        clock=FakeClock(),
        products=Products([product(http.url)]),  # type: ignore[list-item]
    )
    yield client
    client.close()


def run(dt: Ductape, event_tag: str, input: dict[str, Any], **extra: Any) -> Any:
    tag = f"j{len(dt.job.fetch_all())}"
    dt.job.create({"name": tag, "tag": tag, "event_type": "ACTION", "event_tag": event_tag})
    job_id = dt.job.schedule({"env": "dev", "product_tag": "bank", "event": tag, "input": input, **extra}).job_id
    dt.drain()
    (found,) = dt.job.runs(job_id=job_id)
    return found


# ---------------------------------------------------------------------------------------------- the path


@pytest.mark.parametrize(("params", "field"), [({"account": "a", "sub": ".."}, "sub"), ({"account": "."}, "account")])
def test_a_path_parameter_that_is_not_one_segment_is_refused_at_schedule(
    dt: Ductape, http: Recorder, params: dict[str, str], field: str
) -> None:
    """``DELETE /accounts/a/subscriptions/..`` was sent as ``DELETE /api/accounts/a``, with the app's token."""
    with pytest.raises(ValidationError) as err:
        run(dt, "api:cancel", {"params": params})
    assert err.value.field == f"input.params.{field}"
    assert dt.job.list() == [] and http.seen == []


def test_a_missing_path_parameter_is_refused_at_schedule(dt: Ductape) -> None:
    """It failed the run, once stored; it is known at the door."""
    with pytest.raises(ValidationError) as err:
        run(dt, "api:cancel", {"params": {"account": "a"}})
    assert (err.value.field, err.value.rule) == (
        "input.params.sub",
        "is required: the action's path '/accounts/:account/subscriptions/:sub' needs it",
    )


def test_a_value_piped_into_a_path_fills_one_segment(dt: Ductape, http: Recorder) -> None:
    done = run(dt, "api:profile", {"user": "../../admin/export?all=1#"})
    assert done.phase is RunPhase.COMPLETED
    assert http.last.path == "/api/users/..%2F..%2Fadmin%2Fexport%3Fall%3D1%23/profile"


def test_a_dot_segment_piped_into_a_path_fails_the_run_for_good(dt: Ductape, http: Recorder) -> None:
    failed = run(dt, "api:profile", {"user": ".."}, retries=3)
    assert failed.phase is RunPhase.FAILED and failed.retry_count == 0
    assert "'..' is not a path segment's value" in failed.error
    assert http.seen == []


# ----------------------------------------------------------------------------- secrets an answer echoes


def test_a_secret_the_answers_start_is_cut_in_is_masked(dt: Ductape, http: Recorder) -> None:
    """The error quotes 500 characters of a failed answer's body: a caller padding the query chose where the cut
    fell, and read the token's first 20 characters of 27."""
    body = "x" * 488 + f"echo {TOKEN} and more"  # the cut (500) falls 7 characters into the token
    http.reply(400, body, headers={"Content-Type": "text/plain"})
    failed = run(dt, "api:echo", {})
    assert failed.phase is RunPhase.FAILED
    assert "echo [secret" in failed.error and TOKEN[:4] not in failed.error  # the mark may be cut itself


@pytest.mark.parametrize("guess", [TOKEN[:1], TOKEN[:12], "Z", "tok-SECRET-zz"])
def test_a_truncated_bodys_end_is_dropped_whatever_it_holds(dt: Ductape, http: Recorder, guess: str) -> None:
    """A body past 64 KiB is kept as its first 64 KiB of text: cut inside the token, it kept all but its tail. Its
    end is dropped now, as much whether or not it begins a secret: masking an end only when it began one told a
    caller who chose where the cut falls, guess by guess, how a secret begins (a review)."""
    body = "x" * (MAX_BODY_BYTES - len(guess)) + guess + "y" * 100
    http.reply(200, body, headers={"Content-Type": "text/plain"})
    done = run(dt, "api:echo", {})
    assert done.phase is RunPhase.COMPLETED and done.output["truncated"] is True
    kept = done.output["body"]
    assert set(kept) == {"x"} and len(kept) == MAX_BODY_BYTES - 256  # the same for a guess right or wrong


def test_a_secret_in_a_long_error_is_masked_before_the_error_is_cut(dt: Ductape, http: Recorder) -> None:
    """A run's error is at most ERROR_TEXT_CHARS: a function's exception quoting a secret near that bound was cut
    inside it before the worker masked it, and the run's error kept all but the secret's tail."""
    from ductape_jobs.errors import clip

    kept = len(clip("y" * 100_000).split(" [... cut")[0])  # what of a long error is kept before the mark
    message = "x" * (kept - len("RuntimeError: ") - 10) + TOKEN + "y" * 5_000  # the cut falls 10 into the token

    @dt.function("leaks")
    def leaks(input: dict[str, Any], ctx: Any) -> None:
        raise RuntimeError(message)

    dt.job.create({"name": "L", "tag": "leaks", "event_type": "FUNCTION", "event_tag": "leaks"})
    job_id = dt.job.schedule({"env": "dev", "product_tag": "bank", "event": "leaks"}).job_id
    dt.drain()
    (failed,) = dt.job.runs(job_id=job_id)
    assert failed.phase is RunPhase.FAILED and "cut:" in failed.error
    assert "[secret" in failed.error and TOKEN[:4] not in failed.error


def test_the_cache_keeps_the_output_masked(dt: Ductape, http: Recorder) -> None:
    http.reply(200, {"echo": f"token {TOKEN}"})
    done = run(dt, "api:echo", {}, cache="short")
    assert done.output["body"] == {"echo": "token [secret]"}
    kept = dt.store.cache_get(next(iter(_cache_keys(dt))), dt.clock.now())
    assert TOKEN not in str(kept) and "token [secret]" in str(kept)


def _cache_keys(dt: Ductape) -> list[str]:
    import sqlite3

    db = sqlite3.connect(dt.store.path)  # type: ignore[attr-defined]
    try:
        return [key for (key,) in db.execute("SELECT key FROM cache_entries")]
    finally:
        db.close()


def test_a_key_sent_in_an_apps_header_is_masked(dt: Ductape, http: Recorder) -> None:
    """An app's ``headers: {X-Api-Key: ${KEY}}``: an answer echoing it was kept as it came; ``Authorization`` was
    masked beside it. A credential after its scheme is masked alone too; a header whose name says nothing of a
    credential (``X-Cache-Key: orders``) is not a secret: the word "orders" would have been masked everywhere."""
    echoed = {"seen": "key-LIVE-0123456789", "bare": "hdr-token-9876", "cf": "cf-key-55555"}
    http.reply(200, {**echoed, "kind": "jobs", "cache": "orders", "idem": "static-value"})
    done = run(dt, "api:echo", {})
    assert http.last.headers["x-api-key"] == "key-LIVE-0123456789"
    kept = {"kind": "jobs", "cache": "orders", "idem": "static-value"}  # words the product wrote: not secrets
    assert done.output["body"] == {**dict.fromkeys(echoed, "[secret]"), **kept}


def test_the_basic_credentials_the_engine_sends_are_masked_in_an_answer_that_echoes_them(
    dt: Ductape, http: Recorder
) -> None:
    """A security probe: an app's ``basic`` auth, or a ``base_url``'s user part, is sent as ``Authorization: Basic
    <base64 of user:password>``, which the engine builds; an answer echoing its request's headers kept it as it came,
    where a bearer token beside it was masked."""
    sent = "Basic " + base64.b64encode(b"svc:Pa$$w0rd$Now-2024!").decode()
    http.reply(200, {"authorization": sent})
    done = run(dt, "basic:get", {})
    assert http.last.headers["authorization"] == sent and done.output["body"] == {"authorization": "Basic [secret]"}
    echoed = {"query": "api_key=Literal-KEY-5678", "flag": "true", "created": 1}  # ordinary words stay
    http.reply(200, {"authorization": "Basic " + base64.b64encode(b"robot:url-Pw-4444").decode(), **echoed})
    done = run(dt, "inurl:get", {})
    assert base64.b64decode(http.last.headers["authorization"].split()[1]) == b"robot:url-Pw-4444"
    assert done.output["body"] == {"authorization": "Basic [secret]", **echoed, "query": "api_key=[secret]"}
    sent = "Basic " + base64.b64encode(b"svc:Sup3r$ecretPw").decode()
    http.reply(200, {"authorization": sent})
    done = run(dt, "secretbasic:get", {})  # a review: learned as the product was added, it was svc:$Secret{signing}
    assert http.last.headers["authorization"] == sent and done.output["body"] == {"authorization": "Basic [secret]"}


def test_a_base_urls_literal_password_is_masked_in_the_runs_error(dt: Ductape) -> None:
    """A security probe: the log line of a run whose ``base_url`` cannot be read masked its password; the run's
    error, which quotes the URL, did not."""
    failed = run(dt, "badurl:get", {})
    assert failed.phase is RunPhase.FAILED and "Literal-PW-1234" not in failed.error


def test_a_secret_of_digits_is_masked_in_a_json_number(dt: Ductape, http: Recorder) -> None:
    """A security probe: a PIN (``${PROBE_PIN}``) an answer gave back as a JSON number was kept as it came; as text
    it was masked."""
    http.reply(200, {"as_text": "987654321", "as_number": 987654321, "holds_it": 19876543210, "flag": True})
    done = run(dt, "api:echo", {})
    assert done.output["body"] == {
        "as_text": "[secret]",
        "as_number": "[secret]",
        "holds_it": 19876543210,
        "flag": True,
    }


# ------------------------------------------------------------------------------- the environment's values


def test_an_environment_value_holding_a_dollar_is_sent_as_written(dt: Ductape, http: Recorder) -> None:
    """``${PW}`` was expanded and then read as piping: ``Pa$$w0rd$Now-2024!`` went out as ``Pa$w0rd<time>-2024!``."""
    done = run(dt, "basic:get", {})
    assert done.phase is RunPhase.COMPLETED
    sent = base64.b64decode(http.last.headers["authorization"].split()[1]).decode()
    assert sent == "svc:Pa$$w0rd$Now-2024!"


def test_a_job_events_input_is_masked_when_the_secret_holds_a_dollar(dt: Ductape, http: Recorder) -> None:
    """The input was made literal (each ``$`` doubled) and then masked: ``Sup3r$$ecretPw`` matched no secret."""
    http.reply(200, {"key": "Sup3r$ecretPw"})
    dt.job.create({"name": "follow", "tag": "follow", "event_type": "ACTION", "event_tag": "api:echo"})
    dt.feature.run("relay", env="dev", product_tag="bank", input={})
    (made,) = [s for s in dt.job.list() if s.job_tag == "follow"]
    assert "Sup3r" not in str(made.input) and "[secret]" in str(made.input)


# ---------------------------------------------------------------------------------------------- headers


@pytest.mark.parametrize(
    ("headers", "rule"),
    [
        ({"X-A": "a\r\nX-Evil: 1"}, "must not hold a line break"),
        ({"X-A": "a\x00b"}, "must not hold a line break or another control character"),
        ({"X-A": "a\u2028X-Evil: 1"}, "must not hold a line break"),  # a security probe: these three were sent,
        ({"X-A": "a\x85X-Evil: 1"}, "must not hold a line break"),  # as UTF-8 (a proxy or a log that reads
        ({"X-A": "a\x9b31m"}, "must not hold a line break or another control character"),  # them as text breaks there)
        ({"Bad Name": "v"}, "is not a header name"),
        ({"X-A": "trailing "}, "must not begin or end with a space or a tab"),
    ],
)
def test_a_header_that_cannot_be_sent_is_refused_at_schedule(
    dt: Ductape, http: Recorder, headers: dict[str, str], rule: str
) -> None:
    """NUL, a space at an end or a name with a space failed the run as a transport error, retried; a line break
    failed it for good."""
    with pytest.raises(ValidationError) as err:
        run(dt, "api:echo", {"headers": headers})
    assert err.value.field == f"input.headers.{next(iter(headers))}" and err.value.rule.startswith(rule)
    assert dt.job.list() == [] and http.seen == []


def test_text_past_ascii_in_a_header_is_sent(dt: Ductape, http: Recorder) -> None:
    """httpx sends it (as UTF-8): a product's own ``X-Label: café`` and a caller's are not refused."""
    done = run(dt, "api:echo", {"headers": {"X-Note": "naïve"}})
    assert done.phase is RunPhase.COMPLETED and "x-label" in http.last.headers and "x-note" in http.last.headers


def test_params_that_are_a_placeholder_are_checked_when_the_run_starts(dt: Ductape, http: Recorder) -> None:
    """``{"params": "$Now"}`` (a placeholder the run resolves) was refused at schedule() as not an object."""
    failed = run(dt, "api:cancel", {"params": "$Now"})
    assert failed.phase is RunPhase.FAILED and "input.params must be an object" in failed.error


@pytest.mark.parametrize(
    ("email", "field"),
    [
        ({"to": "a@example.com", "subject": "hi\r\nBcc: evil@example.net", "body": "x"}, "input.email.subject"),
        ({"to": "a@example.com\u2028Bcc: evil@example.net", "subject": "s", "body": "x"}, "input.email.to"),
        ({"to": "a@example.com", "bcc": ["b@example.com\nRSET"], "subject": "s", "body": "x"}, "input.email.bcc"),
        # encoded (RFC 2047): the email package decodes it, and before Python 3.11.10 wrote its line break out
        (
            {"to": "a@example.com", "subject": "=?utf-8?q?hi=0D=0ABcc=3A_e=40example.net?=", "body": "x"},
            "input.email.subject",
        ),
        (
            {"to": "=?utf-8?b?QW5uDQpCY2M6IGVAZXhhbXBsZS5uZXQ=?= <a@example.com>", "subject": "s", "body": "x"},
            "input.email.to",
        ),
    ],
)
def test_an_email_the_input_gives_with_a_line_break_in_a_header_is_refused_at_schedule(
    dt: Ductape, email: dict[str, Any], field: str
) -> None:
    """Seed 003's ``email: true`` takes the email from the input: a line break in its subject or an address was
    accepted, stored, and failed the run when it was sent (Python's email policy refused it then); encoded in an
    encoded word (a security probe), it was sent, and added headers and a body of its own to the message."""
    dt.job.create({"name": "F", "tag": "free", "event_type": "NOTIFICATION", "event_tag": "free"})
    with pytest.raises(ValidationError) as err:
        dt.job.schedule({"env": "dev", "product_tag": "bank", "event": "free", "input": {"email": email}})
    assert err.value.field == field and "holds a control character" in err.value.rule
    assert dt.job.list() == []


def test_a_product_specs_repr_shows_none_of_its_secrets() -> None:
    """A security probe: ``repr()`` of what ``products.add()`` returns (and rich's pretty print of it) showed the
    env's secrets, the session and callback secrets, the SMTP password, the bearer token, the credential headers, and
    the passwords in the base URL and the database's URL."""
    from rich.pretty import pretty_repr

    secrets = ["SECRET-aaaa", "SESS-bbbb", "CB-cccc", "SMTP-dddd", "URLPW-eeee", "TOK-ffff", "KEY-gggg", "DBPW-hhhh"]
    secrets += ["ACT-iiii", "QRY-jjjj"]  # an action's own header and query (a review)
    declared = {
        "tag": "shop",
        "envs": {
            "dev": {
                "secrets": {"a": "SECRET-aaaa"},
                "session_secret": "SESS-bbbb",
                "callback_secret": "CB-cccc",
                "smtp": {
                    "host": "mail.example.com",
                    "sender": "a@example.com",
                    "username": "u",
                    "password": "SMTP-dddd",
                },
            }
        },
        "apps": {
            "api": {
                "envs": {
                    "dev": {
                        "base_url": "http://u:URLPW-eeee@api.example.com",
                        "auth": {"kind": "bearer", "token": "TOK-ffff"},
                        "headers": {"X-Api-Key": "KEY-gggg"},
                    }
                },
                "actions": {"get": {"headers": {"X-Api-Key": "ACT-iiii"}, "query": {"api_key": "QRY-jjjj"}}},
            }
        },
        "databases": {"db": {"envs": {"dev": "postgresql://u:DBPW-hhhh@db.example.com/db"}}},
    }
    spec = Products([declared]).get("shop")  # type: ignore[list-item]
    shown = repr(spec) + str(spec) + pretty_repr(spec)
    assert [s for s in secrets if s in shown] == []
    assert "mail.example.com" in shown and "username='u'" in shown  # what is not a secret is still shown


@pytest.mark.parametrize(
    ("value", "rule"), [("$Default(1e309, 0)", "finite"), ("$Default(10000000000000000000, 0)", "64")]
)
def test_a_piped_literal_past_an_inputs_numbers_is_refused_at_schedule(dt: Ductape, value: str, rule: str) -> None:
    """A security probe: ``{"x": 1e309}`` was refused at ``schedule()``, ``{"x": "$Default(1e309, 0)"}`` taken, and the
    FUNCTION was given ``inf`` (a 30-digit integer likewise)."""
    dt.job.create({"name": "F", "tag": "fn", "event_type": "FUNCTION", "event_tag": "fn"})
    with pytest.raises(ValidationError) as err:
        dt.job.schedule({"env": "dev", "product_tag": "bank", "event": "fn", "input": {"x": value}})
    assert err.value.field == "input.x" and rule in err.value.rule
    assert dt.job.list() == []


def test_the_credentials_of_the_urls_the_engine_sends_to_are_secrets() -> None:
    """A review: a push or SMS provider's ``url`` (and a callback's) was not read for credentials as an app's
    ``base_url`` was, and a base URL whose user part is a token (``https://sk_live_...@``, no password) was not."""
    declared = {
        "tag": "shop",
        "envs": {"dev": {"sms": {"url": "https://acct:Prov-Pass-8888@sms.example.com/x?api_key=ProvKey-9999"}}},
        "apps": {"api": {"envs": {"dev": {"base_url": "https://sk_live_TOKEN123456@api.example.com"}}}},
    }
    secrets = Products([declared]).secrets.of("shop")  # type: ignore[list-item]
    text = "Prov-Pass-8888 ProvKey-9999 sk_live_TOKEN123456 " + base64.b64encode(b"sk_live_TOKEN123456:").decode()
    assert secrets.mask_text(text) == "[secret] [secret] [secret] [secret]"
