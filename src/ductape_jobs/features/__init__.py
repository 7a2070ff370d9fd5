"""Features: sequences of events run as one durable unit (``ductape.feature.run``).

``records`` holds what the store keeps (``FeatureRun`` and each event's ``EventResult``); ``plan`` turns a
product's ``FeatureSpec`` into an ordered, checked plan; ``engine`` drives a feature run event by event;
``api`` is ``ductape.feature``. Only the records are imported here, so the store can use them without
pulling in the engine.
"""

from ductape_jobs.features.records import EventResult, EventStatus, FeatureRun, FeatureRunStatus

__all__ = ["EventResult", "EventStatus", "FeatureRun", "FeatureRunStatus"]
