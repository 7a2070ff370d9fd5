"""The HTTP API's shape cannot change unnoticed: its OpenAPI document is compared with the committed snapshot
``tests/api/openapi_snapshot.json``. A change on purpose (a new route, field or rule) is taken by regenerating
the snapshot and committing it with the change, where a reviewer sees the difference:

    UPDATE_SNAPSHOT=1 .venv/bin/pytest tests/api/test_openapi_snapshot.py
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from ductape_jobs import Ductape, FakeClock
from ductape_jobs.api import create_app

SNAPSHOT = Path(__file__).with_name("openapi_snapshot.json")


def _document(tmp_path: Path) -> str:
    with Ductape(f"sqlite:///{tmp_path / 'api.db'}", clock=FakeClock()) as dt:
        spec = create_app(dt).openapi()
    return json.dumps(spec, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_the_openapi_document_matches_the_snapshot(tmp_path: Path) -> None:
    now = _document(tmp_path)
    if os.environ.get("UPDATE_SNAPSHOT") == "1":
        SNAPSHOT.write_text(now, encoding="utf-8")
        pytest.skip(f"wrote {SNAPSHOT.name}: commit it with the change")
    assert SNAPSHOT.exists(), "no snapshot yet: UPDATE_SNAPSHOT=1 pytest tests/api/test_openapi_snapshot.py"
    before = SNAPSHOT.read_text(encoding="utf-8")
    if now != before:
        old, new = json.loads(before), json.loads(now)
        gone = sorted(set(old["paths"]) - set(new["paths"]))
        added = sorted(set(new["paths"]) - set(old["paths"]))
        changed = sorted(
            name
            for name in set(old["components"]["schemas"]) | set(new["components"]["schemas"])
            if old["components"]["schemas"].get(name) != new["components"]["schemas"].get(name)
        )
        pytest.fail(
            f"the API's shape changed (routes gone {gone}, added {added}; schemas changed {changed}). If on "
            "purpose: UPDATE_SNAPSHOT=1 pytest tests/api/test_openapi_snapshot.py, and commit the snapshot",
            pytrace=False,
        )


def test_every_list_route_answers_one_page_shape(tmp_path: Path) -> None:
    """The dashboard reads lists as ``{items: [...]}`` only (api.js ``items``): every GET that lists answers a
    schema with an ``items`` array."""
    spec = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    schemas = spec["components"]["schemas"]
    for path in ("/api/v1/runs", "/api/v1/schedules", "/api/v1/jobs", "/api/v1/webhooks", "/api/v1/features/runs"):
        ref = spec["paths"][path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        body = schemas[ref.rsplit("/", 1)[1]]
        assert body["properties"]["items"]["type"] == "array", path
