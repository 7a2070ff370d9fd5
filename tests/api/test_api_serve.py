"""``ductape serve`` for real (a subprocess: worker and API in one process) and ``ductape apikey``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
from apikit import JOB, SHOP, wait_for
from test_api_ops import metric

from ductape_jobs import Ductape
from ductape_jobs.executors.notify import verify_signature
from support import Recorder, free_port

DUCTAPE = str(Path(sys.executable).parent / "ductape")
APP = """
    import asyncio, logging, os
    from ductape_jobs import Ductape

    ductape = Ductape(os.environ["DUCTAPE_STORE"])
    log = logging.getLogger("e2e.app")

    @ductape.function("report")
    async def report(input, ctx):
        log.info("making the report for %s", input.get("team"))
        await asyncio.sleep(0.05)
        return {"rows": 42}
"""


def cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DUCTAPE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)


def test_apikey_commands(tmp_path: Path) -> None:
    env = {**os.environ, "DUCTAPE_STORE": f"sqlite:///{tmp_path / 'keys.db'}"}
    made = cli("apikey", "create", "--name", "ci", "--product", "shop", "--json", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    key = json.loads(made.stdout)
    assert key["key"].startswith(key["prefix"] + "_") and (key["product_tag"], key["env"]) == ("shop", None)
    shown = cli("apikey", "create", "--name", "people", env=env, cwd=tmp_path)
    assert "not shown again" in shown.stderr and shown.stdout.startswith("dtk_")  # the key alone: KEY=$(...) takes it
    assert shown.stdout.strip() == shown.stdout.rstrip("\n") and len(shown.stdout.splitlines()) == 1

    listed = cli("apikey", "list", "--json", env=env, cwd=tmp_path)
    rows = json.loads(listed.stdout)
    assert [r["name"] for r in rows] == ["people", "ci"]
    assert key["key"] not in listed.stdout and "sha256$" not in listed.stdout
    assert "ci" in cli("apikey", "list", env=env, cwd=tmp_path).stdout

    revoked = cli("apikey", "revoke", key["id"], "--json", env=env, cwd=tmp_path)
    assert revoked.returncode == 0 and json.loads(revoked.stdout)["revoked_at"]
    missing = cli("apikey", "revoke", "key_nope", env=env, cwd=tmp_path)
    assert missing.returncode == 1 and "not found" in missing.stderr
    bad = cli("apikey", "create", "--name", " ", env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "name" in bad.stderr


def test_serve_runs_the_engine_and_the_api(tmp_path: Path, receiver: Recorder) -> None:
    (tmp_path / "jobsapp.py").write_text(textwrap.dedent(APP))
    store = f"sqlite:///{tmp_path / 'serve.db'}"
    env = {**os.environ, "DUCTAPE_STORE": store, "PYTHONPATH": str(tmp_path)}
    env.pop("DUCTAPE_APP", None)
    key = json.loads(cli("apikey", "create", "--name", "ci", "--json", env=env, cwd=tmp_path).stdout)["key"]
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [DUCTAPE, "serve", "--app", "jobsapp:ductape", "--port", str(port), "--webhook-allow", "127.0.0.1/32"],
            cwd=tmp_path,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    c = httpx.Client(base_url=f"{base}/api/v1", headers={"Authorization": f"Bearer {key}"}, timeout=10)
    try:

        def up() -> bool:
            assert proc.poll() is None, log_path.read_text()
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 30, "ductape serve to answer")
        assert httpx.get(f"{base}/readyz").json() == {"status": "ready"}
        assert httpx.get(f"{base}/api/v1/jobs").status_code == 401
        events = ["job.scheduled", "job.started", "job.completed"]
        hook = c.post("/webhooks", json={"product_tag": "shop", "url": receiver.url, "events": events}).json()
        job = {"name": "Report", "tag": "report", "event_type": "FUNCTION", "event_tag": "report"}
        assert c.post("/jobs", json=job).status_code == 201
        job_id = c.post("/schedule", json={"env": "prd", "product_tag": "shop", "event": "report",
                                           "input": {"team": "growth"}}).json()["job_id"]  # fmt: skip

        def finished() -> Any:
            runs = c.get("/runs", params={"job_id": job_id}).json()["items"]
            return runs and runs[0]["phase"] == "completed" and runs[0]

        run = wait_for(finished, 20, "the run to complete")
        assert c.get(f"/runs/{run['id']}").json()["output"] == {"rows": 42}
        wait_for(lambda: len(receiver.seen) >= 3, 20, "the webhook deliveries")  # the delivery loop of serve
        assert sorted(s.json()["event"] for s in receiver.seen) == sorted(events)
        for seen in receiver.seen:
            assert verify_signature(hook["secret"], seen.body, seen.headers["x-ductape-timestamp"],
                                    seen.headers["x-ductape-signature"])  # fmt: skip
        metrics = httpx.get(f"{base}/metrics").text
        assert 'ductape_runs_total{event_type="function",status="completed"} 1.0' in metrics
        assert "<title>" in httpx.get(f"{base}/").text  # the dashboard (its login form)
    finally:
        c.close()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    output = log_path.read_text()
    assert code == 0, output
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert lines, output  # stderr is not a terminal: JSON lines
    run_line = next(line for line in lines if line["message"] == "making the report for growth")
    assert (run_line["run_id"], run_line["job_tag"], run_line["attempt"], run_line["job_id"]) == (
        run["id"],
        "report",
        1,
        job_id,
    )
    assert any("serving http://127.0.0.1:" in line["message"] for line in lines)
    assert any(line["logger"] == "uvicorn.access" for line in lines)
    assert key not in output and hook["secret"] not in output


def test_apikey_scopes_on_the_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "DUCTAPE_STORE": f"sqlite:///{tmp_path / 'keys.db'}"}
    made = cli("apikey", "create", "--name", "viewer", "--scope", "read", "--json", env=env, cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (json.loads(made.stdout)["scope"], json.loads(made.stdout)["scopes"]) == ("read", ["read"])
    shown = cli("apikey", "create", "--name", "ops", env=env, cwd=tmp_path)  # no --scope: admin, as before
    assert "scope admin" in shown.stderr
    rows = json.loads(cli("apikey", "list", "--json", env=env, cwd=tmp_path).stdout)
    assert [(r["name"], r["scope"], r["scopes"]) for r in rows] == [
        ("ops", "admin", ["read", "write", "admin"]),
        ("viewer", "read", ["read"]),
    ]
    table = cli("apikey", "list", env=env, cwd=tmp_path).stdout
    assert "scope" in table and "read" in table and "admin" in table
    narrow = cli("apikey", "list", env={**env, "COLUMNS": "80"}, cwd=tmp_path).stdout  # ids wrap, whole
    first_cells = [line.split("│")[1].strip() for line in narrow.splitlines() if line.startswith("│")]
    assert "".join(first_cells) == "".join(r["id"] for r in rows)
    bad = cli("apikey", "create", "--name", "x", "--scope", "root", env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "scope" in bad.stderr


def test_serve_with_an_https_public_url_sets_a_secure_cookie(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'serve.db'}"
    env = {**os.environ, "DUCTAPE_STORE": store}
    key = json.loads(cli("apikey", "create", "--name", "k", "--json", env=env, cwd=tmp_path).stdout)["key"]
    bad = cli("serve", "--public-url", "jobs.example.com", env=env, cwd=tmp_path)
    assert bad.returncode == 2 and "--public-url" in bad.stderr
    port = free_port()
    argv = [DUCTAPE, "serve", "--no-worker", "--port", str(port), "--public-url", "https://jobs.example.com"]
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen([*argv, "--session-hours", "1"], env=env, cwd=tmp_path, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:

        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 30, "ductape serve to answer")
        cookie = httpx.post(f"{base}/login", data={"key": key}).headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "max-age=3600" in cookie
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_serve_without_a_worker_stores_an_edited_product_file_s_limits(tmp_path: Path) -> None:
    """``ductape serve --no-worker`` (an API node) takes up an edited resource as a worker does."""
    products = tmp_path / "ductape.yaml"

    def declare(concurrency: int) -> None:
        head = "products:\n  - tag: shop\n    envs: [prd]\n    resources:\n"
        products.write_text(f"{head}      crm: {{concurrency: {concurrency}}}\n")
        stamp = products.stat().st_mtime_ns
        os.utime(products, ns=(stamp, stamp + concurrency * 10**9))  # a distinct time, whatever the file system's

    declare(1)
    env = {**os.environ, "DUCTAPE_STORE": f"sqlite:///{tmp_path / 'serve.db'}", "DUCTAPE_PRODUCT_FILE": str(products)}
    key = json.loads(cli("apikey", "create", "--name", "k", "--json", env=env, cwd=tmp_path).stdout)["key"]
    port = free_port()
    with (tmp_path / "serve.log").open("wb") as log:
        argv = [DUCTAPE, "serve", "--no-worker", "--port", str(port)]
        proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=log, stderr=log)
    api = httpx.Client(base_url=f"http://127.0.0.1:{port}/api/v1", headers={"Authorization": f"Bearer {key}"})
    try:

        def concurrency() -> int | None:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                rows = api.get("/resources", params={"product_tag": "shop"}, timeout=1).json()["items"]
            except httpx.HTTPError:
                return None
            return rows[0]["concurrency"] if rows else None

        wait_for(lambda: concurrency() == 1, 30, "the API server to store the declared limit")
        declare(5)
        wait_for(lambda: concurrency() == 5, 15, "the API server to store the edited limit")
        assert "stored 1 resource limit(s)" in (tmp_path / "serve.log").read_text()
    finally:
        api.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_serve_without_a_worker_counts_the_runs_of_workers_elsewhere_with_metrics_from_the_store(
    tmp_path: Path,
) -> None:
    """An API node (``serve --no-worker --metrics-from store``) reports the runs that workers in other processes
    ran, read from the store's outbox."""
    store = f"sqlite:///{tmp_path / 'serve.db'}"
    env = {**os.environ, "DUCTAPE_STORE": store}
    env.pop("DUCTAPE_APP", None)
    port = free_port()
    with (tmp_path / "serve.log").open("wb") as log:
        argv = [DUCTAPE, "serve", "--no-worker", "--metrics-from", "store", "--port", str(port)]
        proc = subprocess.Popen(argv, env=env, cwd=tmp_path, stdout=log, stderr=log)
    raw = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    worker = Ductape(store)  # a worker elsewhere (this test's process)
    try:

        def scrape() -> str | None:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                return raw.get("/metrics", timeout=2).text
            except httpx.HTTPError:
                return None

        wait_for(lambda: scrape() is not None, 30, "the API server to answer")  # counting starts here
        worker.function("report")(lambda input, ctx: {"rows": 42})
        worker.job.create(JOB)
        for _ in range(3):
            worker.job.schedule(SHOP)
        assert worker.drain().completed == 3

        def completed() -> float:
            text = scrape()
            assert text is not None
            try:
                return metric(text, "ductape_runs_total", status="completed", event_type="function")
            except AssertionError:
                return 0

        wait_for(lambda: completed() == 3, 15, "the API server to count the runs")
    finally:
        worker.close()
        raw.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_serve_on_a_port_in_use_says_so_in_one_line_and_starts_nothing(tmp_path: Path) -> None:
    """The port is bound before anything starts: it logged "serving ...", started a worker and stopped it, and
    said why only in a log line (exit 3)."""
    import socket

    env = {**os.environ, "DUCTAPE_STORE": f"sqlite:///{tmp_path / 'busy.db'}"}
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        busy = cli("serve", "--port", str(port), env=env, cwd=tmp_path)
    assert busy.returncode == 1, busy.stderr
    assert f"error: cannot listen on 127.0.0.1:{port}: Address already in use" in busy.stderr
    assert "serving" not in busy.stderr and "started" not in busy.stderr, busy.stderr
