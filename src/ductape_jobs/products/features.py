"""A product's features: named sequences of events (the SDK's ``IFeature``, ``IFeatureSequence``, ``IFeatureEvent``).

::

    features:
      remind:
        input: {email: string, date: string}        # key -> type name
        required: [email]
        sequence:
          - sequence_tag: lookup
            events:
              - {type: FUNCTION, event: find_event, input: {id: "$Input{event_id}"}}
          - sequence_tag: notify
            parents: [lookup]
            events:
              - {type: JOB, event: send_notification, retries: 3, allow_fail: false,
                 input: {email: {to: "$Input{email}", subject: "$Sequence{lookup}{find_event}{title}"}}}

These are the shapes only; the rules between them (parents, cycles, what ``$Sequence{...}`` may point at,
events the product defines) are checked by ``ductape_jobs.features.plan`` when the product is added.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator

from ductape_jobs.inputs import Built, Count, FreeObject, RepeatOptions
from ductape_jobs.limits import MAX_RETRIES
from ductape_jobs.models import FeatureEventTypes

#: Type names a feature's input schema may use (``any`` accepts every JSON value).
INPUT_TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str,
    "number": (int, float),
    "integer": int,
    "boolean": bool,
    "object": dict,
    "array": list,
    "any": object,
}


def _event_type(value: object) -> object:
    return FeatureEventTypes.parse(value)


class _Spec(BaseModel, metaclass=Built):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, defer_build=True)


class FeatureEvent(_Spec):
    """One event of a sequence (``IFeatureEvent``). ``event`` is the event's tag in the product (for a JOB
    event, the job's tag); ``input`` may pipe ``$Input``, ``$Session`` and ``$Sequence`` values."""

    type: Annotated[FeatureEventTypes, BeforeValidator(_event_type)]
    event: str = Field(min_length=1, max_length=256)
    input: FreeObject = Field(default_factory=dict)
    retries: Count = Field(default=0, ge=0, le=MAX_RETRIES, description="attempts after a failure")  # text refused
    allow_fail: StrictBool = Field(default=False, description="the feature goes on after this event fails for good")
    app: str | None = None
    repeat: RepeatOptions | None = Field(default=None, description="JOB events: the cadence instead of the job's")
    start_at: int | float | str | None = Field(
        default=None,
        description="JOB events: when the job starts, as schedule() takes it (a Unix time, ISO 8601, or a "
        "placeholder such as $Input{date}, resolved as the input is); absent: the job's own start",
    )


class FeatureSequence(_Spec):
    """A step of a feature (``IFeatureSequence``): its events run once all its ``parents`` have run."""

    sequence_tag: str = Field(min_length=1, max_length=128)
    parents: list[str] = Field(default_factory=list)
    events: list[FeatureEvent] = Field(min_length=1)


class FeatureSpec(_Spec):
    """A feature (``IFeature``): its input schema and its sequences."""

    tag: str | None = Field(default=None, description="the key it is declared under, if given")
    name: str | None = None
    description: str | None = None
    input: dict[str, str] = Field(default_factory=dict, description="input key -> type name")
    required: list[str] = Field(default_factory=list, description="input keys that must be given")
    sequence: list[FeatureSequence] = Field(min_length=1)

    @field_validator("input")
    @classmethod
    def _types(cls, v: dict[str, str]) -> dict[str, str]:
        for key, name in v.items():
            if name not in INPUT_TYPES:
                raise ValueError(f"input.{key}: unknown type {name!r} (use one of {', '.join(INPUT_TYPES)})")
        return v
