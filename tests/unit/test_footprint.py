"""What a process loads: ``import ductape_jobs`` is the core, and a worker (``ductape worker``) loads what running
jobs needs, never the API, the CLI's rendering or an HTTP client (while no webhook and no HTTP event needs one). The
input models (pydantic) load with the first input read: a client that only runs jobs loads none of pydantic.

Each case runs in a fresh interpreter and reads its ``sys.modules``: what this test process imported does not
count. No timing is asserted (docs/benchmarks.md has the figures)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ductape_jobs import Ductape
from ductape_jobs.cli.main import PARTS

#: Never loaded by ``import ductape_jobs``: the API, the CLI, rendering, HTTP, YAML, tracing, drivers of extras.
NOT_IN_THE_CORE = (
    "fastapi",
    "starlette",
    "uvicorn",
    "prometheus_client",
    "typer",
    "click",
    "rich",
    "pygments",
    "httpx",
    "httpcore",
    "yaml",
    "jwt",
    "aiosmtplib",
    "opentelemetry",
    "psycopg",
    "redis",
    "aio_pika",
    "nats",
    "aiokafka",
    "aiomqtt",
    "pymysql",
    "pydantic",
    "pydantic_core",
)
#: Nor by a worker whose jobs are FUNCTIONs (typer parses its command line: it is there). Not pydantic either: typer
#: 0.29, which loads it to read any option, is kept out (pyproject.toml).
NOT_IN_A_WORKER = tuple(m for m in NOT_IN_THE_CORE if m not in ("typer", "click"))
#: Nor by a client that made a job (it read an input: pydantic is there).
NOT_IN_A_CLIENT = tuple(m for m in NOT_IN_THE_CORE if m not in ("pydantic", "pydantic_core"))
#: The input models and a product file's models: loaded with the first input read or product added.
INPUT_MODELS = ("ductape_jobs.inputs", "ductape_jobs.products.model", "ductape_jobs.products.features")
#: ductape_jobs' own modules a worker never needs: the HTTP API, executors of other event types, tracing, the client's
#: jobs API (``Ductape.job``: a worker makes and schedules no job), a store's copy, and while no product is known the
#: feature engine, sessions and data piping (a plain FUNCTION's input is not resolved).
NOT_OURS_IN_A_WORKER = (
    "ductape_jobs.aio",
    "ductape_jobs.jobs",
    "ductape_jobs.job_scheduling",
    "ductape_jobs.job_control",
    "ductape_jobs.job_reports",
    "ductape_jobs.store.copying",
    "ductape_jobs.features.api",
    "ductape_jobs.features.engine",
    "ductape_jobs.sessions",
    "ductape_jobs.piping",
    "ductape_jobs.api",
    "ductape_jobs.tracing",
    "ductape_jobs.executors.action",
    "ductape_jobs.executors.http",
    "ductape_jobs.executors.notification",
    "ductape_jobs.executors.notify",
    "ductape_jobs.executors.broker",
    "ductape_jobs.executors.brokers",
    "ductape_jobs.executors.database_action",
    "ductape_jobs.executors.databases",
)


def loaded(names: list[str], forbidden: tuple[str, ...]) -> list[str]:
    """The modules of ``names`` that are, or are inside, a ``forbidden`` package."""
    return sorted(n for n in names if any(n == f or n.startswith(f + ".") for f in forbidden))


def modules_after(code: str, cwd: Path) -> list[str]:
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL
    )
    assert done.returncode == 0, done.stderr
    names: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return names


def test_import_ductape_jobs_loads_the_core_only(tmp_path: Path) -> None:
    names = modules_after("import ductape_jobs", tmp_path)
    assert "ductape_jobs.client" in names  # the check itself sees what was imported
    assert loaded(names, NOT_IN_THE_CORE) == []
    assert loaded(names, ("ductape_jobs.cli", *NOT_OURS_IN_A_WORKER, *INPUT_MODELS)) == []


def test_a_client_loads_no_pydantic_until_it_reads_an_input(tmp_path: Path) -> None:
    """A client opened on a store (its migrations, its worker's parts assembled) loads none of the input models; the
    first job made loads them, and with them pydantic."""
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    opened = modules_after(f"from ductape_jobs import Ductape\nDuctape({store!r}).close()", tmp_path)
    assert "ductape_jobs.engine.worker" in opened
    assert loaded(opened, ("pydantic", "pydantic_core", *INPUT_MODELS)) == []
    used = modules_after(
        f"""
        from ductape_jobs import Ductape
        dt = Ductape({store!r})
        dt.job.create({{"name": "n", "tag": "n", "event_type": "FUNCTION", "event_tag": "n"}})
        dt.close()
        """,
        tmp_path,
    )
    assert "pydantic" in used and "ductape_jobs.inputs" in used


def test_the_public_api_still_resolves_in_a_fresh_interpreter(tmp_path: Path) -> None:
    """Everything in ``__all__`` is importable from the package, and using a client opens no extra."""
    names = modules_after(
        f"""
        import ductape_jobs
        from ductape_jobs import *  # noqa: F403
        missing = [n for n in ductape_jobs.__all__ if not hasattr(ductape_jobs, n)]
        assert not missing, missing
        dt = ductape_jobs.Ductape({f"sqlite:///{tmp_path / 'jobs.db'}"!r})
        dt.job.create({{"name": "n", "tag": "n", "event_type": "FUNCTION", "event_tag": "n"}})
        dt.close()
        """,
        tmp_path,
    )
    assert loaded(names, NOT_IN_A_CLIENT) == []


def test_the_cli_module_does_not_load_rendering_or_the_api(tmp_path: Path) -> None:
    names = modules_after("import ductape_jobs.cli.main", tmp_path)
    assert loaded(names, ("rich", "pygments", "httpx", "fastapi", "uvicorn", "yaml", "ductape_jobs.api")) == []


def test_version_loads_no_rendering_or_api(tmp_path: Path) -> None:
    names = modules_after(
        """
        from ductape_jobs.cli.main import app
        try:
            app(["--version"])
        except SystemExit as exc:
            assert exc.code == 0, exc.code
        """,
        tmp_path,
    )
    assert "ductape_jobs.cli.main" in names
    assert loaded(names, ("rich", "pygments", "httpx", "fastapi", "uvicorn", "yaml", "ductape_jobs.api")) == []


APP = """
import json, os, sys
from ductape_jobs import Ductape

app = Ductape(os.environ["FOOTPRINT_STORE"])


@app.function("probe")
async def probe(input, ctx):
    # the worker's whole import set, as its first job runs; then the process ends itself
    with open(os.environ["FOOTPRINT_OUT"] + ".tmp", "w") as f:
        json.dump(sorted(sys.modules), f)
    os.replace(os.environ["FOOTPRINT_OUT"] + ".tmp", os.environ["FOOTPRINT_OUT"])
"""


@pytest.mark.slow
def test_a_worker_runs_its_first_job_without_the_api_rendering_or_http(tmp_path: Path) -> None:
    store, out = f"sqlite:///{tmp_path / 'jobs.db'}", tmp_path / "modules.json"
    (tmp_path / "footprint_app.py").write_text(APP)
    dt = Ductape(store)
    try:
        dt.job.create({"name": "probe", "tag": "probe", "event_type": "FUNCTION", "event_tag": "probe"})
        dt.job.schedule({"env": "prd", "product_tag": "p", "event": "probe", "start_at": 0})
    finally:
        dt.close()
    env = {**os.environ, "FOOTPRINT_STORE": store, "FOOTPRINT_OUT": str(out)}
    cmd = [sys.executable, "-m", "ductape_jobs.cli.main", "worker", "--app", "footprint_app:app", "-q"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not out.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert out.exists(), err.decode()
    names: list[str] = json.loads(out.read_text())
    assert "ductape_jobs.engine.worker" in names
    assert loaded(names, NOT_IN_A_WORKER) == []
    assert loaded(names, (*NOT_OURS_IN_A_WORKER, *INPUT_MODELS)) == []
    # nor the modules of the other commands (serve, demo, copy, webhook, ...): each is imported when it is named
    assert "ductape_jobs.cli.common" in names
    assert loaded(names, tuple(module for module, _ in PARTS.values())) == []


def test_a_part_of_the_client_is_made_once_when_threads_first_use_it_together(tmp_path: Path) -> None:
    """``ductape.job``, ``.feature``, ``.session`` and ``.product`` are made on first use (``Ductape._part``), once a
    client, under its lock: two threads released together get one object (a bare ``cached_property`` makes one each
    from Python 3.12, and two feature engines each keep their own ``sleep``)."""
    import threading

    made: list[object] = []
    together = threading.Barrier(2)

    def make() -> object:
        made.append(object())
        time.sleep(0.05)  # the other thread arrives meanwhile
        return made[-1]

    seen: list[object] = []
    with Ductape(f"sqlite:///{tmp_path / 'jobs.db'}") as dt:

        def first_use() -> None:
            together.wait()
            seen.append(dt._part("probe", make))

        threads = [threading.Thread(target=first_use) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(made) == 1 and seen == [made[0], made[0]]
        assert dt._part("probe", make) is made[0] and len(made) == 1  # made: not made again
        assert dt.feature is dt.feature and dt.job is dt.product.jobs  # the client's own parts, each made once
