"""The products a ``Ductape`` knows: loaded from a product file (YAML or TOML) or declared in Python.

``check_schedule`` is what ``schedule()`` asks before storing anything: the product, the env and the event
must exist. ``env`` gives an event its environment's settings, with ``${VAR}`` read from the process
environment at that moment (secrets live in the environment, never in the job store).
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msgspec import Struct

from ductape_jobs.errors import ExecutionError, ValidationError
from ductape_jobs.limits import MAX_FILE_DEPTH, MAX_FILE_VALUES, check_nesting, shown_name
from ductape_jobs.models import JobEventTypes
from ductape_jobs.redaction import ENV_VAR, SECRETS, Secrets
from ductape_jobs.resources import ResourceLimit

if TYPE_CHECKING:  # the models (pydantic) load when a product is first added: a worker without one loads none
    from ductape_jobs.inputs import JobDefinition
    from ductape_jobs.products.model import ProductSpec


def expand(value: Any, where: str, *, as_data: bool = False) -> Any:
    """``value`` with every ``${VAR}`` replaced from the environment; an unset one fails the run, naming it.

    ``as_data``: each value's ``$`` doubled (``piping.literal``), for a definition that is resolved as piping next:
    a password ``Pa$$w0rd`` or ``x$Now`` is data, sent as written, never read as a placeholder."""
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in os.environ:
                raise ExecutionError(f"environment variable {name} is not set (needed by {where})")
            found = os.environ[name]
            return found.replace("$", "$$") if as_data else found

        return ENV_VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: expand(v, f"{where}.{k}", as_data=as_data) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v, f"{where}[{i}]", as_data=as_data) for i, v in enumerate(value)]
    return value


class EventRef(Struct, frozen=True):
    """Where an event lives in its product: the parts of ``event_tag`` (and ``app``) once looked up."""

    event_type: JobEventTypes
    owner: str | None  # app, database or broker tag; None for notifications and functions
    name: str  # action, notification, database action, topic or function tag


class Products:
    def __init__(self, specs: list[ProductSpec] | None = None) -> None:
        self._by_tag: dict[str, ProductSpec] = {}
        self.secrets = Secrets(parent=SECRETS)  # every product's secrets; .of(tag): one product's
        for spec in specs or []:
            self.add(spec)

    @classmethod
    def load(cls, path: str | Path) -> Products:
        """Read a product file: ``*.yaml``/``*.yml`` (or JSON) or ``*.toml`` with a top-level ``products`` list.

        Its text is UTF-8; it nests at most ``MAX_FILE_DEPTH`` levels and holds at most ``MAX_FILE_VALUES`` values,
        its YAML aliases expanded (counted before anything expands them: nine levels of ten aliases each are a
        billion values). Each is a ``ValidationError`` naming ``product_file`` (a field of a product, its path), as
        is a value its parser cannot read (``2024-02-30``, an integer of 5,000 digits), and nothing is loaded."""
        import tomllib  # only product files need these

        import yaml

        file = Path(path)
        try:
            raw = file.read_bytes()
        except OSError as exc:
            raise ValidationError("product_file", f"cannot read {file}: {exc.strerror}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                "product_file", f"{file} is not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start})"
            ) from None
        kind = file.suffix.lower().lstrip(".") or "yaml"  # .TOML is TOML; any other is read as YAML (JSON too)
        try:
            data = tomllib.loads(text) if kind == "toml" else yaml.load(text, Loader=_loader())
        except RecursionError:  # tomllib's parser recurses once a nested array or table: a few hundred levels
            raise ValidationError("product_file", f"{file} nests deeper than {MAX_FILE_DEPTH} levels") from None
        except _Refused as exc:
            raise ValidationError("product_file", f"{file} {exc}") from None
        except yaml.YAMLError as exc:  # where and what, not PyYAML's text: it quotes the line, secrets and all
            raise ValidationError("product_file", f"{file} is not valid {kind}: {_problem(exc)}") from None
        except tomllib.TOMLDecodeError as exc:  # its text says where, quoting nothing of the file
            raise ValidationError("product_file", f"{file} is not valid toml: {exc}") from None
        except ValueError as exc:  # TOML: an integer of 5,000 digits (YAML's values: _Refused, by the loader)
            raise ValidationError("product_file", f"{file} holds a value that cannot be read: {exc}") from None
        try:
            check_nesting(data, "product_file", MAX_FILE_DEPTH)  # TOML's dotted keys nest without recursing
        except ValidationError as exc:
            raise ValidationError("product_file", f"{file} {exc.rule}") from None
        from pydantic import ValidationError as PydanticValidationError

        from ductape_jobs.inputs import invalid, reported
        from ductape_jobs.products.model import ProductFile

        try:
            parsed = ProductFile.model_validate(data or {})
        except PydanticValidationError as exc:
            raise invalid(reported(exc), "product_file") from None
        return cls(parsed.products)

    def add(self, spec: ProductSpec | dict[str, Any]) -> ProductSpec:
        from pydantic import ValidationError as PydanticValidationError

        from ductape_jobs.inputs import invalid, reported
        from ductape_jobs.products.feature_plan import check_features
        from ductape_jobs.products.model import ProductSpec

        if isinstance(spec, dict):
            try:
                spec = ProductSpec.model_validate(spec)
            except PydanticValidationError as exc:
                raise invalid(reported(exc), "product") from None
        check_features(spec, self.locate)  # sequences, parents, $Sequence piping, the events they run
        self.secrets.of(spec.tag).learn_settings(
            spec.model_dump(exclude={"features"})
        )  # masked wherever text leaves the engine
        self._by_tag[spec.tag] = spec
        return spec

    @property
    def configured(self) -> bool:
        """Without any product, ``schedule()`` accepts any product_tag and env (FUNCTION jobs need none)."""
        return bool(self._by_tag)

    def tags(self) -> list[str]:
        return sorted(self._by_tag)

    def get(self, tag: str) -> ProductSpec:
        try:
            return self._by_tag[tag]
        except KeyError:
            known = ", ".join(self.tags()) or "none"
            raise ValidationError("product_tag", f"unknown product {tag!r} (known: {known})") from None

    def find(self, tag: str) -> ProductSpec | None:
        return self._by_tag.get(tag)

    def check_env(self, product_tag: str, env: str) -> ProductSpec:
        spec = self.get(product_tag)
        if env not in spec.envs:
            known = ", ".join(sorted(spec.envs)) or "none"
            raise ValidationError("env", f"product {product_tag!r} has no env {env!r} (it has: {known})")
        return spec

    def check_job_event(self, spec: ProductSpec, event_type: JobEventTypes, event_tag: str) -> None:
        """A job's event, when the job is made (``ValidationError`` naming ``event``): as ``locate`` finds it, but an
        action that several apps have is left to each schedule's ``app``."""
        apps = spec.apps.values()
        if (
            event_type is JobEventTypes.ACTION
            and ":" not in event_tag
            and sum(event_tag in a.actions for a in apps) > 1
        ):
            return
        self.locate(spec, event_type, event_tag, None)

    def locate(self, spec: ProductSpec, event_type: JobEventTypes, event_tag: str, app: str | None) -> EventRef:
        """Find the event ``event_tag`` of ``event_type`` in ``spec``; ``ValidationError`` naming ``event``. ``app``
        names the owner the tag does not (``check_schedule`` lets a new schedule give it for an ACTION only; a run
        stored before that rule is found as it was)."""
        owner, sep, name = event_tag.partition(":")
        if not sep:
            owner, name = "", event_tag
        if event_type is JobEventTypes.FUNCTION:
            return EventRef(event_type, None, event_tag)
        named: dict[JobEventTypes, tuple[str, dict[str, Any]]] = {
            JobEventTypes.NOTIFICATION: ("notification", dict(spec.notifications)),
            JobEventTypes.FEATURE: ("feature", dict(spec.features)),
        }
        if event_type in named:
            what, known = named[event_type]
            if event_tag in known:
                return EventRef(event_type, None, event_tag)
            raise _missing(what, event_tag, spec.tag, known)
        by_owner: dict[str, dict[str, Any]]
        if event_type is JobEventTypes.ACTION:
            by_owner, what, owner_kind = {t: dict(a.actions) for t, a in spec.apps.items()}, "action", "app"
        elif event_type is JobEventTypes.DATABASE_ACTION:
            by_owner = {t: dict(d.actions) for t, d in spec.databases.items()}
            what, owner_kind = "database action", "database"
        else:
            by_owner, what, owner_kind = {t: dict(b.topics) for t, b in spec.brokers.items()}, "topic", "broker"
        field = "event" if owner or not app else "app"  # the app the schedule gave picks the owner: it is named
        owner = owner or app or ""
        if owner:
            if owner not in by_owner:
                raise _missing(owner_kind, owner, spec.tag, by_owner, field)
            if name not in by_owner[owner]:
                known = {f"{owner}:{n}": 1 for n in by_owner[owner]}
                raise _missing(what, f"{owner}:{name}", spec.tag, known, field)
            return EventRef(event_type, owner, name)
        holders = [o for o, names in by_owner.items() if name in names]
        if len(holders) == 1:
            return EventRef(event_type, holders[0], name)
        if len(holders) > 1:
            settle = " or give the schedule's app" if event_type is JobEventTypes.ACTION else ""
            raise ValidationError(
                "event",
                f"{what} {name!r} exists in {owner_kind}s {holders}; write it as {owner_kind}_tag:{name}{settle}",
            )
        raise _missing(what, name, spec.tag, {f"{o}:{n}": 1 for o, ns in by_owner.items() for n in ns})

    def check_schedule(
        self, product_tag: str, env: str, event_type: JobEventTypes, event_tag: str, app: str | None
    ) -> EventRef | None:
        """What ``schedule()`` validates; ``None`` when no product is configured at all (a FUNCTION then runs
        whatever its product_tag and env; every other event type is refused: only a product declares it)."""
        from ductape_jobs.products.feature_plan import check_app

        check_app(event_type, app, event_tag)
        if not self.configured:
            if event_type is JobEventTypes.FUNCTION:
                return None
            raise ValidationError(
                "event",
                f"a {event_type.name} job runs an event that its product declares, and no product is declared: "
                f"add product {product_tag!r} with env {env!r} and its {_KIND[event_type]} {event_tag!r} "
                "(ductape.products.add(...) or a product file)",
            )
        spec = self.check_env(product_tag, env)
        return self.locate(spec, event_type, event_tag, app)

    def limits_of(self, job: JobDefinition) -> list[ResourceLimit]:
        """The limits of the resources a job names, each declared by its product (``ValidationError`` naming
        ``resources[i]`` if not). Its own ``concurrency``/``rate`` the store keeps with the job."""
        if not job.resources:
            return []
        if job.product_tag is None:
            raise ValidationError(
                "resources",
                "a shared job has no product to declare resources; give it a product_tag, or set its own "
                "concurrency and rate",
            )
        spec = self.find(job.product_tag)
        declared = spec.resources if spec is not None else {}
        for i, name in enumerate(job.resources):
            if name not in declared:
                known = ", ".join(sorted(declared)) or "none"
                raise ValidationError(
                    f"resources[{i}]",
                    f"resource {name!r} is not declared by product {job.product_tag!r} (declared: {known})",
                )
        return [declared[name].limit(job.product_tag, name) for name in job.resources]

    def check_cache(self, product_tag: str, cache: str) -> None:
        """A schedule's ``cache`` names a cache its product declares."""
        spec = self.find(product_tag)
        if spec is None:
            raise ValidationError("cache", f"{cache!r}: declare it under caches in product {product_tag!r} first")
        if cache not in spec.caches:
            have = ", ".join(sorted(spec.caches)) or "none"
            raise ValidationError("cache", f"product {product_tag!r} declares no cache {cache!r} (it has: {have})")


class _Refused(Exception):
    """What a product file's YAML may not hold (too deep a nesting, too many values once its aliases expand, an
    alias of what holds it), found as it is read."""


@functools.cache
def _loader() -> type[Any]:
    """PyYAML's safe loader, counting depth as it composes (its composer recurses once a level: ``[[[...]]]`` five
    thousand deep exhausted the stack) and measuring each document its aliases expanded before it is constructed
    (``_expanded``). Built on first use: PyYAML is imported only to read a product file."""
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0

        def __init__(self, stream: Any) -> None:
            super().__init__(stream)
            self.written: dict[int, list[Any]] = {}  # a mapping's own keys, by id(node), as the file writes them

        def compose_node(self, parent: Any, index: Any) -> Any:
            event = self.peek_event()  # type: ignore[no-untyped-call]
            if not isinstance(event, yaml.CollectionStartEvent):  # a scalar or an alias: no deeper here
                return super().compose_node(parent, index)
            self.depth += 1  # lists and mappings, as check_nesting counts them
            try:
                if self.depth > MAX_FILE_DEPTH:
                    raise _Refused(f"nests deeper than {MAX_FILE_DEPTH} levels ({_where(event)})")
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def compose_document(self) -> Any:
            node = super().compose_document()
            _expanded(node, 1, {}, set())
            return node

        def compose_mapping_node(self, anchor: Any) -> Any:
            node = super().compose_mapping_node(anchor)
            self.written[id(node)] = list(node.value)  # as written: a merge (<<) extends node.value later
            return node

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            """A name given twice in one mapping is refused, naming it and where (PyYAML keeps the last: a product's
            second ``envs``, written further down, silently replaced the first), in this mapping and in those its
            merge keys (``<<``) bring in, which are never constructed on their own. The names a merge brings in are
            not the mapping's own: those it writes itself override them, as YAML means. Checked once the merges
            are flattened (which also reads a ``=`` name as text), each mapping once."""
            self.flatten_mapping(node)
            _names_given_once(node, self.written, self.construct_object)
            return yaml.constructor.BaseConstructor.construct_mapping(self, node, deep)  # flattened above

        def construct_object(self, node: Any, deep: bool = False) -> Any:
            """A value its tag's constructor cannot make (a 30th of February, ``!!int "x"``, ``!!bool "y"``) is
            refused saying where and as what, not with the constructor's own error: its type varies (``ValueError``,
            ``KeyError``, ``AttributeError``) and its text quotes the value, a secret perhaps."""
            try:
                return super().construct_object(node, deep)
            except (yaml.YAMLError, _Refused):
                raise
            except Exception:
                tag = str(node.tag).replace("tag:yaml.org,2002:", "!!")
                raise _Refused(f"holds a value that cannot be read as {tag} ({_where(node)})") from None

    return Loader


#: The tag of a YAML merge key (``<<``).
_MERGE = "tag:yaml.org,2002:merge"


def _names_given_once(node: Any, written: dict[int, list[Any]], construct: Callable[..., Any]) -> None:
    """``_each_name_once`` over the mapping ``node`` and the mappings its merge keys bring in, each as ``written``
    holds its pairs (by ``id``; taken from it: each mapping is checked once)."""
    mappings = [node]
    while mappings:
        pairs = written.pop(id(mappings.pop()), ())
        _each_name_once([key for key, _ in pairs], construct)
        for key, value in pairs:
            if key.tag == _MERGE:
                mappings.extend(value.value if value.id == "sequence" else [value])


def _each_name_once(keys: Iterable[Any], construct: Callable[..., Any]) -> None:
    """``_Refused`` for the first of a YAML mapping's ``keys`` (its key nodes, as written) that names what one
    before it named, saying where; a merge key (``<<``) is not a name. ``construct`` makes a key node's value."""
    seen: set[Any] = set()
    for node in keys:
        if node.tag == _MERGE:
            continue
        key = construct(node, deep=True)
        try:
            if key in seen:
                raise _Refused(_given_twice(key, _where(node)))
            seen.add(key)
        except TypeError:  # an unhashable key: PyYAML's own error names it
            return


def _given_twice(key: Any, where: str) -> str:
    """What a product file that gives ``key`` twice in one mapping is told (``where``: the second). A text name is
    shown escaped and cut past 100 characters, as a caller's JSON's are (``limits.shown_name``); another (``1``,
    ``true``, ``~``) is not shown: YAML reads several spellings as one such name."""
    if isinstance(key, str):
        shown = "'" + shown_name(key).replace("'", "\\'") + "'" if key else shown_name(key)
        return f"gives the name {shown} twice in one mapping ({where}); give it once"
    return (
        f"gives a name twice in one mapping ({where}: YAML reads it as a name before it, as it reads 1, 0x1, 1.0 "
        "and true as one); give it once"
    )


def _problem(exc: Any) -> str:
    """What a PyYAML error says, and where, without the snippet of the file its text quotes, nor any text of the
    file its words quote longer than a token (an undefined alias's or tag's name is what follows a ``*`` or a ``!``
    written there: a secret, perhaps, that the file failing to load left unknown to the masking)."""
    context, problem = getattr(exc, "context", None), getattr(exc, "problem", None)
    if problem is None:
        return type(exc).__name__
    problem = _QUOTED.sub(lambda m: m.group(0) if len(m.group(0)) <= 4 or m.group(0)[1] == "<" else "'...'", problem)
    mark = getattr(exc, "problem_mark", None)
    where = "" if mark is None else f" (line {mark.line + 1}, column {mark.column + 1})"
    return f"{context}: {problem}{where}" if context else f"{problem}{where}"


#: A quoted text in a PyYAML message (``'x'``, ``'<block end>'``, ``'tag:yaml.org,2002:python/object'``).
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")


def _expanded(node: Any, level: int, sizes: dict[int, tuple[int, int]], open_: set[int]) -> int:
    """The values ``node`` holds with its aliases expanded (an alias is the node it names, shared: each node is
    measured once), refused past ``MAX_FILE_VALUES``, or nested past ``MAX_FILE_DEPTH`` at ``level``, or holding
    an alias of itself. ``sizes``: each node measured so far, its values and its height."""
    key = id(node)
    if key in open_:
        raise _Refused(f"holds an alias of a value that holds it ({_where(node)}): it never ends")
    known = sizes.get(key)
    if known is None:
        children = [part for pair in node.value for part in pair] if node.id == "mapping" else node.value
        if node.id == "scalar":
            known = (1, 0)
        else:
            if level > MAX_FILE_DEPTH:
                raise _Refused(f"nests deeper than {MAX_FILE_DEPTH} levels, its aliases expanded ({_where(node)})")
            open_.add(key)
            count, height = 1, 1
            for child in children:
                count += _expanded(child, level + 1, sizes, open_)
                height = max(height, 1 + sizes[id(child)][1])
                if count > MAX_FILE_VALUES:
                    raise _Refused(
                        f"holds more than {MAX_FILE_VALUES:,} values once its YAML aliases are expanded "
                        f"({_where(node)}): write fewer"
                    )
            open_.discard(key)
            known = (count, height)
        sizes[key] = known
    if level + known[1] - 1 > MAX_FILE_DEPTH:
        raise _Refused(f"nests deeper than {MAX_FILE_DEPTH} levels, its aliases expanded ({_where(node)})")
    return known[0]


def _where(event: Any) -> str:
    """Where a YAML event starts, as an editor counts (from 1)."""
    mark = event.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}"


_KIND = {
    JobEventTypes.ACTION: "app action",
    JobEventTypes.NOTIFICATION: "notification",
    JobEventTypes.DATABASE_ACTION: "database action",
    JobEventTypes.MESSAGEBROKER: "broker topic",
    JobEventTypes.FEATURE: "feature",
    JobEventTypes.FUNCTION: "function",
}


def _missing(what: str, name: str, product: str, known: dict[str, Any], field: str = "event") -> ValidationError:
    have = ", ".join(sorted(known)) or "none"
    return ValidationError(field, f"product {product!r} defines no {what} {name!r} (it has: {have})")
