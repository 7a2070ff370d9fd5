"""A feature's plan: its sequences in run order and, for each event, the earlier events it waits for.

Built when a product is added (``Products.add`` calls ``check_features``), so a bad definition is refused
then, as a ``ValidationError`` naming its path (``products.shop.features.remind.sequence[1].parents``):

- a sequence tag used twice, an unknown parent, parents that form a cycle;
- an event tag used twice in one sequence, an event the product does not define, a feature event that
  calls itself (directly or through other features), ``repeat`` on an event that is not a JOB;
- ``$Sequence{sequence_tag}{event_tag}...`` that points at an unknown sequence or event, at a sequence that
  does not run before (not an ancestor through ``parents``), at a later event of the same sequence, or at a
  JOB event (a job event is void: it has no output);
- ``$Input{key}`` for a key the feature's input schema does not declare (when it declares any).

Sequences run one after the other in plan order (a sequence after all its parents). The events of one
sequence run concurrently, except that an event piping ``$Sequence{this_sequence}{other}`` waits for ``other``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from msgspec import Struct

from ductape_jobs.errors import ValidationError
from ductape_jobs.models import FeatureEventTypes, JobEventTypes
from ductape_jobs.piping import PipingError, PipingSyntaxError, Reference, parse, restrict
from ductape_jobs.piping.errors import located
from ductape_jobs.piping.resolve import STORED_SOURCES
from ductape_jobs.products.features import INPUT_TYPES, FeatureEvent, FeatureSequence, FeatureSpec
from ductape_jobs.products.model import ProductSpec

#: ``Products.locate``: finds an event in a product or raises ``ValidationError``.
Locate = Callable[[ProductSpec, JobEventTypes, str, str | None], Any]

#: Feature event types that an executor of the same job event type runs.
EXECUTED = {
    FeatureEventTypes.ACTION: JobEventTypes.ACTION,
    FeatureEventTypes.NOTIFICATION: JobEventTypes.NOTIFICATION,
    FeatureEventTypes.DATABASE_ACTION: JobEventTypes.DATABASE_ACTION,
    FeatureEventTypes.FUNCTION: JobEventTypes.FUNCTION,
    FeatureEventTypes.MESSAGEBROKER: JobEventTypes.MESSAGEBROKER,
}


class PlannedEvent(Struct, frozen=True):
    sequence_tag: str
    tag: str
    spec: FeatureEvent
    position: int
    after: tuple[str, ...]  # earlier events of the same sequence that it pipes from
    where: str  # its path in the product, for messages

    @property
    def type(self) -> FeatureEventTypes:
        return self.spec.type


class PlannedSequence(Struct, frozen=True):
    tag: str
    parents: tuple[str, ...]
    events: tuple[PlannedEvent, ...]


class FeaturePlan(Struct, frozen=True):
    product_tag: str
    tag: str
    spec: FeatureSpec
    sequences: tuple[PlannedSequence, ...]  # in run order
    where: str

    @property
    def events(self) -> list[PlannedEvent]:
        return [event for sequence in self.sequences for event in sequence.events]


def check_features(product: ProductSpec, locate: Locate) -> None:
    """Plan every feature of ``product`` (raising on the first bad definition) and refuse feature events
    that call back into themselves."""
    for tag in product.features:
        plan_feature(product, tag, locate)
    _check_no_recursion(product)


def plan_feature(product: ProductSpec, tag: str, locate: Locate) -> FeaturePlan:
    where = f"products.{product.tag}.features.{tag}"
    feature = product.features[tag]
    if feature.tag is not None and feature.tag != tag:
        raise ValidationError(f"{where}.tag", f"is {feature.tag!r} but the feature is declared as {tag!r}")
    undeclared = [key for key in feature.required if feature.input and key not in feature.input]
    if undeclared:
        raise ValidationError(f"{where}.required", f"{undeclared[0]!r} is not declared in the input schema")
    order = _run_order(feature.sequence, where)
    ancestors = _ancestors(feature.sequence)
    by_tag = {s.sequence_tag: s for s in feature.sequence}
    index = {s.sequence_tag: i for i, s in enumerate(feature.sequence)}
    planned: list[PlannedSequence] = []
    position = 0
    for sequence in order:
        swhere = f"{where}.sequence[{index[sequence.sequence_tag]}]"
        events: list[PlannedEvent] = []
        seen: dict[str, int] = {}
        for j, event in enumerate(sequence.events):
            ewhere = f"{swhere}.events[{j}]"
            if event.event in seen:
                raise ValidationError(
                    f"{ewhere}.event", f"event {event.event!r} is already in sequence {sequence.sequence_tag!r}"
                )
            _check_event(product, event, ewhere, locate)
            after = _check_references(feature, sequence, seen, by_tag, ancestors, event, ewhere)
            seen[event.event] = j
            events.append(PlannedEvent(sequence.sequence_tag, event.event, event, position, after, ewhere))
            position += 1
        planned.append(PlannedSequence(sequence.sequence_tag, tuple(sequence.parents), tuple(events)))
    return FeaturePlan(product.tag, tag, feature, tuple(planned), where)


def check_input(plan: FeaturePlan, given: object) -> dict[str, Any]:
    """The feature's input against its schema: required keys present, declared keys of their type."""
    if not isinstance(given, dict):
        raise ValidationError("input", f"must be an object (a dict), got {type(given).__name__}")
    try:
        json.dumps(given, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError("input", f"must be JSON-serialisable: {exc}") from None
    spec = plan.spec
    for key in spec.required:
        if key not in given:
            raise ValidationError(f"input.{key}", f"is required by feature {plan.tag!r}")
    for key, type_name in spec.input.items():
        if key not in given or type_name == "any":
            continue
        value = given[key]
        wrong = not isinstance(value, INPUT_TYPES[type_name])
        if isinstance(value, bool) and type_name in ("number", "integer"):
            wrong = True
        if wrong:
            raise ValidationError(f"input.{key}", f"must be {'an' if type_name[0] in 'aeiou' else 'a'} {type_name}")
    return given


# ------------------------------------------------------------------------------------------ sequences


def _run_order(sequences: list[FeatureSequence], where: str) -> list[FeatureSequence]:
    """Sequences without parents first, then each once all its parents are placed (declared order breaks ties)."""
    tags: dict[str, int] = {}
    for i, sequence in enumerate(sequences):
        if sequence.sequence_tag in tags:
            raise ValidationError(
                f"{where}.sequence[{i}].sequence_tag", f"sequence {sequence.sequence_tag!r} is declared twice"
            )
        tags[sequence.sequence_tag] = i
    for i, sequence in enumerate(sequences):
        for parent in sequence.parents:
            if parent not in tags:
                known = ", ".join(tags)
                raise ValidationError(
                    f"{where}.sequence[{i}].parents", f"unknown parent {parent!r} (the sequences are: {known})"
                )
    placed: list[FeatureSequence] = []
    done: set[str] = set()
    while len(placed) < len(sequences):
        ready = [s for s in sequences if s.sequence_tag not in done and set(s.parents) <= done]
        if not ready:
            cycle = _cycle({s.sequence_tag: list(s.parents) for s in sequences if s.sequence_tag not in done})
            first = tags[cycle[0]]
            raise ValidationError(f"{where}.sequence[{first}].parents", f"parents form a cycle: {' -> '.join(cycle)}")
        placed.append(ready[0])
        done.add(ready[0].sequence_tag)
    return placed


def _cycle(graph: dict[str, list[str]]) -> list[str]:
    """A cycle in ``graph`` (node -> successors) as a path that ends where it starts; the graph must hold one."""
    for start in graph:
        path: list[str] = []
        node: str | None = start
        while node is not None and node not in path:
            path.append(node)
            node = next((n for n in graph.get(node, []) if n in graph), None)
        if node is not None:
            return [*path[path.index(node) :], node]
    raise AssertionError("no cycle")  # pragma: no cover


def _ancestors(sequences: list[FeatureSequence]) -> dict[str, set[str]]:
    parents = {s.sequence_tag: list(s.parents) for s in sequences}
    found: dict[str, set[str]] = {}

    def of(tag: str) -> set[str]:
        if tag not in found:
            found[tag] = set()  # placeholder: the order check already refused cycles
            acc: set[str] = set()
            for parent in parents[tag]:
                acc |= {parent, *of(parent)}
            found[tag] = acc
        return found[tag]

    for tag in parents:
        of(tag)
    return found


# --------------------------------------------------------------------------------------------- events


def _check_event(product: ProductSpec, event: FeatureEvent, where: str, locate: Locate) -> None:
    if event.repeat is not None and event.type is not FeatureEventTypes.JOB:
        raise ValidationError(f"{where}.repeat", "only a JOB event takes repeat")
    if event.start_at is not None and event.type is not FeatureEventTypes.JOB:
        raise ValidationError(f"{where}.start_at", "only a JOB event takes start_at")
    if event.type in (FeatureEventTypes.JOB, FeatureEventTypes.FEATURE):  # their input is stored
        try:
            restrict({"input": event.input, "start_at": event.start_at}, STORED_SOURCES)
        except PipingSyntaxError as exc:  # a malformed placeholder: named where it is, as a misspelt source is
            raise ValidationError(located(where, exc.at), str(exc)) from None
        except PipingError as exc:
            raise ValidationError(
                located(where, exc.at),
                f"{exc.placeholder}: a {event.type.name} event's input is stored, and a secret never is; "
                "let the event that needs it read it",
            ) from None
    if event.type is FeatureEventTypes.FEATURE:
        if event.event not in product.features:
            known = ", ".join(sorted(product.features)) or "none"
            raise ValidationError(
                f"{where}.event", f"product {product.tag!r} defines no feature {event.event!r} (it has: {known})"
            )
    elif event.type in EXECUTED:
        try:
            check_app(EXECUTED[event.type], event.app, event.event)
        except ValidationError as exc:
            raise ValidationError(f"{where}.app", exc.rule) from None
        try:
            locate(product, EXECUTED[event.type], event.event, event.app)
        except ValidationError as exc:
            raise ValidationError(f"{where}.event", exc.rule) from None


def check_app(event_type: JobEventTypes, app: str | None, event_tag: str = "") -> None:
    """A schedule's ``app`` names the app of an ACTION event whose tag names none, or the one it names; any other
    event refuses it (a database's or a broker's tag given as ``app`` was taken for the event's owner, a FUNCTION's
    was passed over, and another app than the tag's was passed over, silently)."""
    if app is None:
        return
    if event_type is not JobEventTypes.ACTION:
        raise ValidationError("app", f"names the app of an ACTION event; this event is a {event_type.name}")
    owner, sep, _ = event_tag.partition(":")
    if sep and app != owner:
        raise ValidationError("app", f"is {app!r}, but the event {event_tag!r} is app {owner!r}'s")


def _texts(value: Any, at: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        if "$" in value:
            yield at, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _texts(item, f"{at}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _texts(item, f"{at}[{i}]")


def _references(event: FeatureEvent, where: str) -> Iterator[tuple[str, Reference]]:
    for at, text in _texts(event.input):
        try:
            template = parse(text)
        except PipingSyntaxError as exc:
            raise ValidationError(f"{where}.input{at}", str(exc)) from None
        for ref in template.references():
            yield f"{where}.input{at}", ref


def _check_references(
    feature: FeatureSpec,
    sequence: FeatureSequence,
    earlier: dict[str, int],
    sequences: dict[str, FeatureSequence],
    ancestors: dict[str, set[str]],
    event: FeatureEvent,
    where: str,
) -> tuple[str, ...]:
    """Check ``event``'s piping; return the earlier events of its own sequence it pipes from."""
    after: list[str] = []
    current = sequence.sequence_tag
    for at, ref in _references(event, where):
        if ref.source == "Input" and feature.input and ref.path and ref.path[0] not in feature.input:
            raise ValidationError(at, f"{ref}: the feature's input declares no key {ref.path[0]!r}")
        if ref.source != "Sequence":
            continue
        seq_tag, event_tag = str(ref.path[0]), str(ref.path[1])
        target = sequences.get(seq_tag)
        if target is None:
            raise ValidationError(at, f"{ref}: the feature has no sequence {seq_tag!r}")
        piped = next((e for e in target.events if e.event == event_tag), None)
        if piped is None:
            raise ValidationError(at, f"{ref}: sequence {seq_tag!r} has no event {event_tag!r}")
        if seq_tag == current:
            if event_tag not in earlier:
                raise ValidationError(
                    at,
                    f"{ref}: event {event_tag!r} does not come before {event.event!r} in sequence {current!r}; "
                    "only earlier events of the same sequence can be piped from",
                )
            if event_tag not in after:
                after.append(event_tag)
        elif seq_tag not in ancestors[current]:
            raise ValidationError(
                at, f"{ref}: sequence {seq_tag!r} does not run before {current!r} (it is not one of its ancestors)"
            )
        if piped.type is FeatureEventTypes.JOB:
            raise ValidationError(at, f"{ref}: {event_tag!r} is a JOB event; a job event is void (it has no output)")
    return tuple(after)


def _check_no_recursion(product: ProductSpec) -> None:
    calls = {
        tag: [e.event for s in feature.sequence for e in s.events if e.type is FeatureEventTypes.FEATURE]
        for tag, feature in product.features.items()
    }
    graph = {tag: callees for tag, callees in calls.items() if callees}  # declared order: stable messages
    while True:  # drop features that call nothing recursive, until only cycles are left
        leaves = {tag for tag, callees in graph.items() if not any(c in graph for c in callees)}
        if not leaves:
            break
        graph = {tag: callees for tag, callees in graph.items() if tag not in leaves}
    if graph:
        cycle = _cycle(graph)
        raise ValidationError(
            f"products.{product.tag}.features.{cycle[0]}", f"feature events call back into it: {' -> '.join(cycle)}"
        )
