"""``ductape session start|verify``: session tokens of the sessions a product declares (``ductape.session``).

A token is a credential: ``start`` prints it (once, nothing keeps it), and ``verify`` reads it from standard
input when given ``-``, so that it stays out of the process list and the shell's history. Neither logs it.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from ductape_jobs.cli import render
from ductape_jobs.cli.common import AppOpt, JsonOpt, client, emit, emit_secret, parse_json_object

session_app = typer.Typer(
    help="Session tokens of a product's declared sessions: start one (prints the token), verify one.",
    no_args_is_help=True,
)

#: A session is signed and verified with its product's secret, and nothing is stored: without --app (whose own
#: store it is), the command opens none (a SQLite file was made where there was none).
_NO_STORE = "sqlite:///:memory:"
EnvOpt = Annotated[str, typer.Option(help="Environment, e.g. dev (its session_secret signs the token).")]
ProductTagOpt = Annotated[
    str, typer.Option("--product-tag", "--product", help="The product that declares the session.")
]


@session_app.command("start")
def session_start(
    tag: Annotated[str, typer.Argument(help="The session's tag, as the product declares it.")],
    data: Annotated[str, typer.Option(help="The session's data, a JSON object (the session's schema applies).")],
    env: EnvOpt,
    product_tag: ProductTagOpt,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Issue a signed session token for --data and print it ('tag:jwt', what schedule --session takes). The
    products come from --app or --product-file. Bad data exits 2 naming the field."""
    with client(_NO_STORE if app_ is None else None, app_, creates=True) as dt:  # the app's store, as it opens it
        token = dt.session.start(tag, parse_json_object(data, "data"), env=env, product_tag=product_tag)
    made = {"tag": token.tag, "expires_at": token.expires_at, "subject": token.subject}
    about = (
        f"Session token for {tag} ({product_tag}/{env}), subject {token.subject or '-'}, expires "
        f"{token.expires_at.isoformat()}. It is a credential: keep it secret."
    )
    emit_secret(made, as_json, about, str(token), field="session")


@session_app.command("verify")
def session_verify(
    token: Annotated[str, typer.Argument(help="The token, 'tag:jwt'; - reads it from standard input.")],
    env: EnvOpt,
    product_tag: ProductTagOpt,
    app_: AppOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Verify a session token and print its data (--json: {"data": ...}, as POST /sessions/verify answers). A
    tampered, expired, foreign-tag or other-env token exits 2."""
    given = sys.stdin.readline().strip() if token == "-" else token
    with client(_NO_STORE if app_ is None else None, app_, creates=True) as dt:  # the app's store, as it opens it
        data = dt.session.verify(given, env=env, product_tag=product_tag)
    people = f"valid; the session's data: {json.dumps(data, default=str)}"
    emit({"data": data}, as_json, lambda: render.new_text(people))
