"""A product file's FUNCTION (``functions: {tag: "module:function"}``) is the product's own: two products that map
one tag to different functions each run theirs, whichever ran first in the process (a probe: the first loaded was
kept under the bare tag, and every product's ``report`` ran it from then on, with the other product's input)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ductape_jobs import Ductape


@pytest.mark.parametrize("first", ["a", "b"])
def test_two_products_that_map_one_tag_each_run_their_own_function(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: str
) -> None:
    for product in ("a", "b"):
        (tmp_path / f"fns_{product}_{first}.py").write_text(
            f"def report(input, ctx):\n    return {{'ran': 'product {product}', 'for': ctx.product_tag}}\n"
        )
    monkeypatch.syspath_prepend(str(tmp_path))
    with Ductape(f"sqlite:///{tmp_path / 'jobs.db'}") as dt:
        for product in ("a", "b"):
            dt.products.add(
                {"tag": product, "envs": {"prd": {}}, "functions": {"report": f"fns_{product}_{first}:report"}}
            )
            dt.product(product).jobs.create({"name": "r", "tag": "r", "event_type": "FUNCTION", "event_tag": "report"})
        for product in (first, "b" if first == "a" else "a", first):
            dt.job.schedule({"env": "prd", "product_tag": product, "event": "r"})
            dt.drain()
        outputs = sorted((r.product_tag, r.output["ran"], r.output["for"]) for r in dt.job.runs())
    assert outputs == [
        ("a", "product a", "a"),
        *[("a", "product a", "a")] * (first == "a"),
        ("b", "product b", "b"),
        *[("b", "product b", "b")] * (first == "b"),
    ]
