"""What every command shares: the ``--store``/``--app``/``--json`` options, loading the user's ``Ductape``,
turning ``DuctapeError`` into a message and an exit code, and JSON output."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar

import typer
from msgspec import Struct

from ductape_jobs.cli.render import new_text
from ductape_jobs.client import OPEN_ONLY, Ductape
from ductape_jobs.clock import iso_text
from ductape_jobs.errors import DuctapeError, ValidationError
from ductape_jobs.limits import read_json, visible
from ductape_jobs.logs import logger
from ductape_jobs.store import DEFAULT_URL, plain_file, refuse_missing
from ductape_jobs.targets import parse_networks

log = logger("ductape_jobs.cli")

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="URL",
        help="Store URL (sqlite:///path.db, postgresql://...). Default: the --app's store, else $DUCTAPE_STORE, "
        f"else {DEFAULT_URL}. A SQLite file that is not there is made only by a command that needs none "
        "(worker, serve, job create, ...); the others refuse it.",
        show_default=False,
    ),
]
#: ``--store`` of a command that takes no ``--app`` (``demo``, ``apikey``): its help names no ``--app`` either.
OwnStoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        metavar="URL",
        help=f"Store URL (sqlite:///path.db, postgresql://...). Default: $DUCTAPE_STORE, else {DEFAULT_URL}. A "
        "SQLite file that is not there is made only by a command that needs none (demo, apikey create).",
        show_default=False,
    ),
]
ProductOpt = Annotated[
    str | None,
    typer.Option(
        "--product",
        "--product-tag",
        metavar="TAG",
        help="The product whose jobs to manage (the seeds' product.jobs); none: shared jobs (and every job).",
        show_default=False,
    ),
]
AppOpt = Annotated[
    str | None,
    typer.Option(
        "--app",
        metavar="MODULE:ATTR",
        envvar="DUCTAPE_APP",
        help="Your module and its Ductape object, e.g. myproject.jobs:ductape (the current directory is importable).",
        show_default=False,
    ),
]


def flag(*names: str, help: str, **extra: Any) -> Any:
    """A boolean option given alone (``--json``): no type column in ``--help``, where typer 0.29 writes ``<bool>`` for
    every boolean option, and ``--json true`` then failed (a new-user probe)."""
    return typer.Option(*names, help=help, metavar="", **extra)


JsonOpt = Annotated[bool, flag("--json", help="Print JSON for scripts instead of a table.")]
WebhookAllowOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--webhook-allow",
        metavar="CIDR",
        help="A network webhook targets may use besides public addresses, e.g. 127.0.0.0/8 (repeatable; "
        "adds to $DUCTAPE_WEBHOOK_ALLOW). Loopback, private, link-local and metadata addresses are refused otherwise.",
        show_default=False,
    ),
]


#: The width of output that is not a terminal (a pipe, a file) when ``$COLUMNS`` names none: wide enough that no
#: table is narrowed, so every cell is printed whole, on one line (rich's default, 80, cut and wrapped ids).
UNCAPPED = 100_000


def out() -> Console:
    """A console on the current stdout (created per call so that redirected/captured stdout is honoured). A
    terminal's width is its own (or ``$COLUMNS``); output to anything else is not narrowed, unless ``$COLUMNS``
    says how wide it is."""
    from rich.console import Console  # rich loads when something is drawn (a worker never does)

    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal and not os.environ.get("COLUMNS", "").strip().isdigit():
        console.width = UNCAPPED
    return console


T = TypeVar("T")


def integer(value: str | int) -> int:
    """An integer option's value (``typer.Option(parser=integer)``): ASCII digits and an optional sign. typer's own
    type reads it with ``int()``, which took any Unicode digit (``--every ٦٠٠٠٠`` was 60,000) and underscores."""
    return value if isinstance(value, int) else _ascii(value, int, "a whole number (digits 0-9)")


def decimal(value: str | float) -> float:
    """A number option's value (``typer.Option(parser=decimal)``): ASCII digits, an optional sign and fraction
    ("nan" is the engine's bounds' to refuse, in a line)."""
    return float(value) if isinstance(value, int | float) else _ascii(value, float, "a number (digits 0-9, a point)")


def _ascii(value: str, read: Callable[[str], T], what: str) -> T:
    """``read(value)`` of ASCII text without underscores (what ``int()`` and ``float()`` read besides: any Unicode
    digit, ``1_000``); ``typer.BadParameter`` saying it is not ``what`` otherwise."""
    try:
        if value.isascii() and "_" not in value:
            return read(value)
    except ValueError:
        pass
    raise typer.BadParameter(f"{visible(value)!r} is not {what}")


def decimal_between(low: float, high: float | None = None) -> Callable[[str | float], float]:
    """``decimal``, from ``low`` to ``high`` (``None``: no bound above), as typer's ``min=``/``max=`` bounded it."""

    def decimal_(value: str | float) -> float:
        number = decimal(value)
        if number < low or (high is not None and number > high):
            bounds = f"at least {low:g}" if high is None else f"from {low:g} to {high:g}"
            raise typer.BadParameter(f"{number:g} is not {bounds}")
        return number

    decimal_.__name__ = "decimal"  # what --help shows: <decimal>
    return decimal_


def fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {visible(message)}", err=True)  # a message may quote data: its control characters escaped
    return typer.Exit(code)


def exit_code(exc: DuctapeError) -> int:
    """2 for bad input (as for a usage error), 1 for everything else (not found, conflict, store failure)."""
    return 2 if isinstance(exc, ValidationError) else 1


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn ``DuctapeError`` into ``error: message`` on stderr and an exit code, never a traceback."""
    try:
        yield
    except DuctapeError as exc:
        raise fail(str(exc), exit_code(exc)) from None


# ----------------------------------------------------------------------------------------- the client


def import_from_here() -> str:
    """The folder the command runs in, put first on ``sys.path`` (as ``python -m`` puts it): your modules import from
    there, an ``--app``'s and a product file's ``module:function`` alike (a worker of a product file loaded them
    only with --app given, or PYTHONPATH set: each such FUNCTION run failed "No module named ...")."""
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    return cwd


def import_app(spec: str) -> Ductape:
    """``module:attr`` (``attr`` may be dotted; ``module`` alone looks for ``app``, then ``ductape``, passing over
    one that is not a client: a FastAPI ``app`` beside the ``ductape`` it serves). An ``AsyncDuctape`` stands for
    its ``.sync``, the same engine."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ValidationError("app", f"{spec!r} is not MODULE:ATTR (e.g. myproject.jobs:ductape)")
    if module_name.startswith(".") or "/" in module_name or "\\" in module_name:  # a path (importlib: TypeError)
        dotted = module_name.removesuffix(".py").lstrip("./\\").replace("/", ".").replace("\\", ".")
        raise ValidationError(
            "app",
            f"{spec!r} is a file's path, not MODULE:ATTR: give its module's dotted name "
            f"({dotted or 'app'}{':' + attr if attr else ''}) from the folder the module is imported from",
        )
    cwd = import_from_here()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise ValidationError("app", f"cannot import module {module_name!r} (from {cwd}): {exc}") from None
        raise
    candidates = [attr] if attr else ["app", "ductape"]
    others: list[str] = []
    for name in candidates:
        obj: Any = module
        try:
            for part in name.split("."):
                obj = getattr(obj, part)
        except AttributeError:
            continue
        aio = sys.modules.get("ductape_jobs.aio")  # an AsyncDuctape is made only where its module was imported
        if aio is not None and isinstance(obj, aio.AsyncDuctape):
            obj = obj.sync
        if isinstance(obj, Ductape):
            return obj
        others.append(f"{module_name}:{name} is {_a(type(obj).__name__)}")
    if others:
        raise ValidationError("app", f"{'; '.join(others)}, not a Ductape or an AsyncDuctape")
    raise ValidationError("app", f"module {module_name!r} has no attribute {' or '.join(map(repr, candidates))}")


def _a(noun: str) -> str:
    return f"{'an' if noun[:1].lower() in 'aeiou' else 'a'} {noun}"


#: What a command does with a SQLite file that is not there: refuse it (``False``: it works on what a store holds),
#: make it (``True``: a worker, ``serve``, the demo), or make it to hold the record the command makes, and remove it
#: again when that record is refused (``"record"``: bad input leaves no new, empty store behind).
Creates = bool | Literal["record"]


def load_client(
    store: str | None, app: str | None, *, creates: Creates = False, **settings: Any
) -> tuple[Ductape, bool]:
    """The ``Ductape`` a command works on, and whether the CLI owns it (and so closes it).

    ``--app`` alone uses the user's object as is. ``--store`` with ``--app`` opens that store but keeps the app's
    functions, executors, clock and worker settings. Neither: ``--store``, ``$DUCTAPE_STORE`` or the default.
    ``settings`` are ``Ductape(...)`` keywords for a client the CLI opens itself. Unless the command ``creates``
    a store (see ``Creates``), a SQLite file that is not there is refused, not made empty: a mistyped path listed
    nothing and left a new store behind."""
    if app and store is None:
        return (import_app(app) if creates else _import_open_only(app)), False
    url = _url(store)
    if not creates:
        _must_exist(url, bool(store))  # before the app is imported: its own Ductape may make a file
    user = import_app(app) if app else None
    if user is None:
        return Ductape(url, create_store=bool(creates), **settings), True
    return user.on_store(url, create_store=bool(creates)), True


def _import_open_only(app: str) -> Ductape:
    """``--app`` alone, for a command that makes no store: the app imported with ``OPEN_ONLY`` set, so that its
    ``Ductape()`` refuses a store none was made in rather than make it (run in the wrong folder, ``runs`` listed an
    empty store it had just made, ``copy`` copied it). An app already imported in this process is taken as it is."""
    token = OPEN_ONLY.set(True)
    try:
        return import_app(app)
    except ValidationError as exc:
        if exc.field != "store":
            raise
        raise ValidationError("store", f"{exc.rule} (the store --app {app} opens)") from None
    finally:
        OPEN_ONLY.reset(token)


def _url(store: str | None) -> str:
    return store or os.environ.get("DUCTAPE_STORE") or DEFAULT_URL


def _must_exist(url: str, given: bool) -> None:
    source = "" if given else " (from $DUCTAPE_STORE)" if os.environ.get("DUCTAPE_STORE") else " (the default)"
    refuse_missing(url, source)


def _made_file(dt: Ductape) -> str | None:
    """The SQLite file ``dt``'s store made as it opened (``None``: it was there, or the store is not a SQLite file):
    opened by ``--store``, or by an ``--app``'s own ``Ductape()`` as the app was imported."""
    from ductape_jobs.store.sqlite.store import SQLiteStore  # here: only a command that makes a record asks

    store = dt.store
    return store.path if isinstance(store, SQLiteStore) and store.created else None


@contextmanager
def client(
    store: str | None,
    app: str | None,
    *,
    creates: Creates = False,
    wrote: Callable[[Ductape], bool] | None = None,
    **settings: Any,
) -> Iterator[Ductape]:
    """Open the command's ``Ductape`` (closing it afterwards) with ``user_errors()`` around the command. A command
    that ``creates="record"``: its refused record (a ``ValidationError``: nothing written) removes the store it
    made. ``wrote``: for a command whose ``ValidationError`` may also come after it wrote (a feature run refuses
    before it is recorded, but one of its events' writes may refuse a value after): whether the new store holds
    what it wrote, which is then kept."""
    with user_errors():
        dt, owned = load_client(store, app, creates=creates, **settings)
        new = _made_file(dt) if creates == "record" else None
        try:
            yield dt
        except ValidationError:
            if new is not None and not _kept(dt, wrote):
                dt.close()  # the app's own client too: the command ends here, and its file goes
                owned = False
                for suffix in ("", "-wal", "-shm"):
                    with contextlib.suppress(FileNotFoundError):
                        os.remove(new + suffix)
            raise
        finally:
            if owned:
                dt.close()


def _kept(dt: Ductape, wrote: Callable[[Ductape], bool] | None) -> bool:
    """Whether a refused command's new store stays: it holds what the command wrote, or that cannot be told (the
    question failed: the store stays, and the command's own error is the one raised)."""
    if wrote is None:
        return False
    try:
        return wrote(dt)
    except Exception:
        return True


def check_networks(networks: list[str] | None) -> None:
    """Refuse a bad ``--webhook-allow`` before anything is opened."""
    with user_errors():
        parse_networks(networks)


def allow_webhooks_to(dt: Ductape, networks: list[str] | None) -> None:
    """Add ``--webhook-allow`` networks to the client's webhook allowlist."""
    if networks:
        dt.webhooks.allow = [*dt.webhooks.allow, *networks]


def store_label(dt: Ductape) -> str:
    """The store as a URL, a SQLite file's path made absolute (a worker started in another directory than the app
    made a ./ductape.db of its own, and said only "./ductape.db")."""
    path = getattr(dt.store, "path", None)
    if isinstance(path, str):
        return f"sqlite:///{os.path.abspath(path) if plain_file(path) else path}"
    label = getattr(dt.store, "label", None)  # PostgresStore's: its URL, the password masked
    return label if isinstance(label, str) else type(dt.store).__name__


def log_started(dt: Ductape, *, worker: bool = True) -> None:
    """What a starting worker (or server) logs: its store, the FUNCTIONs registered in it and those its products
    map to a ``module:function`` (imported when first run): a product file's alone are not "none". A worker with
    none says so as a warning: each FUNCTION run it claims fails that attempt (retried, as its retries allow, by a
    worker that has it), which a dashboard started without --app did to a fleet's runs unawares."""
    line = started_line(dt)
    if worker and line.endswith(_NO_FUNCTIONS):
        log.warning("%s; a FUNCTION run this worker claims fails that attempt (ductape serve: --no-worker)", line)
    else:
        log.info("%s", line)
    if worker:
        for function, target in _not_found(dt):
            log.warning(
                "FUNCTION %s maps to %r, whose module is not found from %s: each of its runs this worker claims fails "
                "that attempt until it is",
                function,
                target,
                os.getcwd(),
            )


def _not_found(dt: Ductape) -> list[tuple[str, str]]:
    """The FUNCTIONs ``dt``'s products map to a ``module:function`` whose top package cannot be found on
    ``sys.path`` (looked up, not imported: the function is imported when first run), as ``(tag (product), target)``."""
    found: list[tuple[str, str]] = []
    registered = set(dt.functions.tags())
    for product in dt.products.tags():
        for tag, target in sorted(dt.products.get(product).functions.items()):
            top = target.partition(":")[0].split(".")[0]
            if tag not in registered and (not top or importlib.util.find_spec(top) is None):
                found.append((f"{tag} ({product})", target))
    return found


_NO_FUNCTIONS = "functions: none (start with --app, or map them in a product's functions)"


def started_line(dt: Ductape) -> str:
    mapped = [
        f"{tag} ({product})" for product in dt.products.tags() for tag in sorted(dt.products.get(product).functions)
    ]
    shown = ", ".join(dt.functions.tags() + mapped)
    return f"store {store_label(dt)}; " + (f"functions: {shown}" if shown else _NO_FUNCTIONS)


# ----------------------------------------------------------------------------------------------- JSON


def jsonable(value: Any) -> Any:
    """Records as JSON values: datetimes as ISO 8601, durations as milliseconds (the seeds' unit)."""
    if "pydantic" in sys.modules and isinstance(value, sys.modules["pydantic"].BaseModel):  # none: none loaded
        return jsonable(value.model_dump())
    if isinstance(value, Struct):
        return {name: jsonable(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):  # as the HTTP API writes one (pydantic): UTC as Z
        return iso_text(value)
    if isinstance(value, timedelta):
        return int(value.total_seconds() * 1000)
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


def emit(
    data: Any, as_json: bool, render: Callable[[], RenderableType], *, extra: dict[str, Any] | None = None
) -> None:
    """Print ``data`` as JSON, each record as the HTTP API answers it (``answers.answer``), with ``extra``'s fields
    added to a record's (a secret shown once), or ``render()`` for people. JSON writes every control character as
    its escape (``json.dumps`` keeps ``ensure_ascii``); a table or a message shows it as one (``render.new_text``)."""
    if as_json:
        from ductape_jobs.answers import answer  # here: its models are built only when JSON is asked for

        answered = answer(data) if extra is None else {**answer(data), **extra}
        typer.echo(json.dumps(jsonable(answered), indent=2, default=str))
    else:
        shown = render()
        # data in it is never console markup; a table whose ids are wider than the console overflows it rather
        # than lose its right edge (render.id_column: an id is never cut)
        out().print(new_text(shown) if isinstance(shown, str) else shown, crop=False)


def emit_secret(data: Any, as_json: bool, about: str, secret: str, *, field: str) -> None:
    """``emit`` of a record and the secret made with it (a token, a signing secret): as JSON, the record's answer
    with the secret as ``field``; for people, ``about`` on standard error and the secret alone on standard output,
    whole (never wrapped or cut to the terminal's width), so that it copies and ``$(...)`` or a pipe takes it."""
    if as_json:
        emit(data, as_json, lambda: about, extra={field: secret})
    else:
        typer.echo(visible(about), err=True)
        typer.echo(secret)


def parse_json(text: str, field: str) -> Any:
    """``text`` as JSON: the one parse of every JSON the CLI reads (``--input``, ``--data``, ``schedule-many``'s
    file), by the API's rule (``limits.read_json``: a name given twice is refused, named under ``field``)."""
    return read_json(text, field, root=field)


def parse_json_object(text: str | None, field: str) -> dict[str, Any]:
    if text is None:
        return {}
    value = parse_json(text, field)
    if not isinstance(value, dict):
        raise ValidationError(field, "must be a JSON object, e.g. '{\"user\": 42}'")
    return value
