"""Feature runs and webhook deliveries page by a cursor as runs and schedules do: ``after`` (the id of the last of a
page) in Python, over HTTP and on the command line; an id not in the list (unknown, another product's for a key
limited to a product, another webhook's) is a 422 naming ``after``, never a page past it."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from apikit import Api, problems
from typer.testing import CliRunner

from ductape_jobs import ValidationError
from ductape_jobs.cli.main import app
from ductape_jobs.features import FeatureRun, FeatureRunStatus
from ductape_jobs.ids import new_id
from ductape_jobs.models import DeliveryStatus, WebhookDelivery


def pages(c: httpx.Client, path: str) -> list[str]:
    """Every item's id of ``path``'s list, a page of 3 at a time, each page past the last item of the one before."""
    seen: list[str] = []
    asked: dict[str, Any] = {"limit": 3}
    while True:
        answer = c.get(path, params=asked)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        seen += [item["id"] for item in page["items"]]
        if not page["has_more"]:
            return seen
        asked["after"] = seen[-1]


def cli(api: Api, *args: str) -> Any:
    store = f"sqlite:///{api.dt.store.path}"  # type: ignore[attr-defined]
    env = {"DUCTAPE_APP": None, "DUCTAPE_STORE": None}
    return CliRunner().invoke(app, [*args, "--store", store], env=env)


def make_feature_runs(api: Api) -> list[FeatureRun]:
    now = api.dt.clock.now()
    runs = [
        FeatureRun(
            id=new_id("feat"),
            product_tag="shop" if i % 3 else "blog",
            env="prd",
            feature_tag="greet",
            input={"n": i},
            status=FeatureRunStatus.COMPLETED,
            created_at=now + timedelta(seconds=i // 2),  # two at each instant: ordered by id
            updated_at=now,
        )
        for i in range(8)
    ]
    for run in runs:
        api.dt.store.create_feature_run(run)
    return runs


def test_feature_runs_page_past_the_last_one_seen_and_one_outside_the_list_is_a_422(api: Api) -> None:
    runs = make_feature_runs(api)
    c = api.client()
    whole = [r["id"] for r in c.get("/features/runs").json()["items"]]
    assert sorted(whole) == sorted(r.id for r in runs)
    assert pages(c, "/features/runs") == whole
    shop = [r["id"] for r in c.get("/features/runs", params={"product_tag": "shop"}).json()["items"]]
    shop_only = api.client(api.key(scope="read", product_tag="shop"))
    assert pages(shop_only, "/features/runs") == shop

    blog = next(r.id for r in runs if r.product_tag == "blog")
    assert c.get("/features/runs", params={"after": blog}).status_code == 200  # the unlimited key pages past it
    for asked in ({"after": blog}, {"after": "feat_gone"}):  # another product's run is not found, as no run is
        assert problems(shop_only.get("/features/runs", params=asked)) == [
            (
                "after",
                f"no feature run with id {asked['after']!r} in this list (never made, pruned since, or of another "
                "feature, product or env than it keeps); page from the start",
            )
        ]
    with pytest.raises(ValidationError) as refused:  # the Python API says the same
        api.dt.feature.runs(after="feat_gone")
    assert refused.value.field == "after"
    for unstorable in ("feat_\ud800", 7):  # refused by the store's lookup, or not text: named as the caller named it
        with pytest.raises(ValidationError) as refused:
            api.dt.feature.runs(after=unstorable)  # type: ignore[arg-type]
        assert refused.value.field == "after", refused.value

    listed = cli(api, "feature", "runs", "--limit", "3", "--after", whole[2], "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == whole[3:6]
    gone = cli(api, "feature", "runs", "--after", "feat_gone")
    assert gone.exit_code == 2 and "error: after: no feature run with id 'feat_gone'" in gone.stderr


def test_deliveries_page_past_the_last_one_seen_and_another_webhooks_is_a_422(api: Api) -> None:
    c = api.client()
    hooks = [
        c.post("/webhooks", json={"product_tag": "shop", "url": "https://example.com/h", "events": ["job.failed"]})
        for _ in range(2)
    ]
    mine, theirs = (h.json()["id"] for h in hooks)
    now = api.dt.clock.now()
    made = [
        WebhookDelivery(
            id=new_id("dlv"),
            webhook_id=hook,
            event="job.failed",
            payload={"event": "job.failed", "data": {"n": i}},
            status=DeliveryStatus.PENDING,
            attempts=0,
            created_at=now + timedelta(seconds=i // 3),
            next_attempt_at=now + timedelta(days=1),
        )
        for i, hook in enumerate([mine] * 7 + [theirs])
    ]
    api.dt.store.enqueue_deliveries(made)
    path = f"/webhooks/{mine}/deliveries"
    whole = [d["id"] for d in c.get(path).json()["items"]]
    assert sorted(whole) == sorted(d.id for d in made[:7])
    assert pages(c, path) == whole
    for gone in (made[-1].id, "dlv_gone"):
        assert problems(c.get(path, params={"after": gone})) == [
            (
                "after",
                f"no webhook delivery with id {gone!r} in this list (never made, pruned since, or another "
                "webhook's); page from the start",
            )
        ]
    listed = cli(api, "webhook", "deliveries", mine, "--limit", "2", "--after", whole[0], "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [d["id"] for d in json.loads(listed.stdout)] == whole[1:3]
