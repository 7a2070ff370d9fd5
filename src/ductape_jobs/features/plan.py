"""A feature's plan (``ductape_jobs.products.feature_plan``, where the products' definitions are checked; kept
here for the import path ``ductape_jobs.features.plan``)."""

from ductape_jobs.products.feature_plan import (
    EXECUTED,
    FeaturePlan,
    PlannedEvent,
    PlannedSequence,
    check_features,
    check_input,
    plan_feature,
)

__all__ = [
    "EXECUTED",
    "FeaturePlan",
    "PlannedEvent",
    "PlannedSequence",
    "check_features",
    "check_input",
    "plan_feature",
]
