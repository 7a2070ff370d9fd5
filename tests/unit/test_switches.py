"""A public call's switches are True or False and its names and ids are text: anything else is a ValidationError
naming the parameter, with nothing written (read as a truth value, "no" was True and "" was False; a number reached
``str.strip`` as an AttributeError)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ductape_jobs import Ductape, ValidationError
from ductape_jobs.apikeys import ApiKeys
from ductape_jobs.clock import FakeClock


@pytest.mark.parametrize("value", ["no", "false", "", 0, 1])
def test_server_clock_takes_true_false_or_none(tmp_path: Path, value: object) -> None:
    with pytest.raises(ValidationError) as err:
        Ductape(f"sqlite:///{tmp_path}/j.db", clock=FakeClock(), server_clock=value)  # type: ignore[arg-type]
    assert (err.value.field, err.value.rule) == (
        "server_clock",
        f"must be True, False or None, not {type(value).__name__}",
    )
    assert list(tmp_path.iterdir()) == []  # refused before the store was opened


@pytest.mark.parametrize("store", [5, b"sqlite:///x.db", ["sqlite:///x.db"]])
def test_the_store_is_a_url_or_a_store(store: Any) -> None:
    with pytest.raises(ValidationError) as err:
        Ductape(store)
    assert (err.value.field, err.value.rule) == ("store", f"must be a store URL or a Store, not {type(store).__name__}")


@pytest.mark.parametrize("value", ["", "false", 0, None])
def test_prune_dry_run_takes_true_or_false_and_deletes_nothing_else(tmp_path: Path, value: object) -> None:
    with Ductape(f"sqlite:///{tmp_path}/j.db", clock=FakeClock()) as dt:
        dt.function("f")(lambda input, ctx: None)
        dt.job.create({"name": "F", "tag": "f", "event_type": "FUNCTION", "event_tag": "f"})
        dt.job.schedule({"env": "prd", "product_tag": "p", "event": "f"})
        dt.drain()
        dt.clock.advance(seconds=1)  # the run ended a second before: past a keep of 0
        with pytest.raises(ValidationError) as err:
            dt.prune(dry_run=value, keep_completed=timedelta(0))  # type: ignore[arg-type]
        assert (err.value.field, err.value.rule) == ("dry_run", f"must be True or False, not {type(value).__name__}")
        assert len(dt.job.runs()) == 1  # "" was taken as False: the run was deleted
        assert dt.prune(dry_run=True, keep_completed=timedelta(0)).runs == 1
        assert len(dt.job.runs()) == 1


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda keys: keys.create(5), "name"),
        (lambda keys: keys.create("ok", product_tag=5), "product_tag"),
        (lambda keys: keys.create("ok", env=5), "env"),
        (lambda keys: keys.revoke(None), "key_id"),
        (lambda keys: keys.revoke(5), "key_id"),
    ],
)
def test_api_keys_take_text(tmp_path: Path, call: Any, field: str) -> None:
    with Ductape(f"sqlite:///{tmp_path}/j.db", clock=FakeClock()) as dt:
        keys = ApiKeys(dt.store, dt.clock)
        with pytest.raises(ValidationError) as err:
            call(keys)
        assert (err.value.field, err.value.rule) == (field, "must be text" + ("" if field == "key_id" else ", not int"))
        assert keys.list() == []


def test_an_empty_product_tag_of_a_key_is_named_as_the_call_names_it(tmp_path: Path) -> None:
    with Ductape(f"sqlite:///{tmp_path}/j.db", clock=FakeClock()) as dt:
        with pytest.raises(ValidationError) as err:
            ApiKeys(dt.store, dt.clock).create("ok", product_tag=" ")
        assert err.value.field == "product_tag"


@pytest.mark.parametrize("call", ["get", "resume", "retry"])
def test_a_feature_run_id_is_text(tmp_path: Path, call: str) -> None:
    with Ductape(f"sqlite:///{tmp_path}/j.db", clock=FakeClock()) as dt:
        with pytest.raises(ValidationError) as err:
            getattr(dt.feature, call)(5)
        assert (err.value.field, err.value.rule) == ("feature_run_id", "must be text")
