#!/usr/bin/env python3
"""Check that the built package stands alone: what `make check-wheel` (and CI, after `make test`) runs.

1. `python -m build` makes the sdist, then the wheel from the sdist, in a temporary folder.
2. Both hold every file of src/ductape_jobs (the dashboard's static files, the .sql files and migrations,
   py.typed), the sdist LICENSE, README.md and pyproject.toml; the wheel the license, the `ductape` script and
   complete metadata (`twine check --strict` too, when twine is installed).
3. A fresh venv gets the wheel WITHOUT extras: no extra's module is importable, `ductape --help` works, the
   README's Quickstart (its `app.py` block, run twice, then its `ductape ...` commands, `ductape worker` for
   a moment) works on a temporary SQLite store, and what needs an extra says which one in one line.
4. The same venv gets `wheel[api]`: `ductape serve` on a free loopback port answers `/`, `/openapi.json`, the
   dashboard's static files, its login and `/api/v1/jobs` with a key, then stops cleanly on SIGTERM.

Usage: scripts/check_wheel.py [--python PYTHON] [--keep]. Stdlib only, plus `build` (in the dev extra).
Exits 1 on the first failure, with a message saying what failed and the output that shows why.
"""

from __future__ import annotations

import argparse
import email
import email.policy
import http.cookiejar
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIR = ROOT / "src" / "ductape_jobs"
NAME = "ductape-jobs"
EXTRAS = ("api", "brokers", "mysql", "otel", "postgres")
# modules that only an extra installs: none may be importable after a plain install
EXTRA_MODULES = (
    *("fastapi", "starlette", "uvicorn", "prometheus_client"),
    *("psycopg", "psycopg_pool", "pymysql"),
    *("redis", "aio_pika", "nats", "aiomqtt", "aiokafka"),
    "opentelemetry",
)
REQUIRED_IN_PACKAGE = (
    "py.typed",
    "api/static/index.html",
    "api/static/login.html",
    "api/static/app.css",
    "api/static/js/main.js",
    "store/sqlite/queries.sql",
    "store/sqlite/migrations/0001_initial.sql",
    "store/postgres/queries.sql",
    "store/postgres/migrations/0001_initial.sql",
)
CLASSIFIERS = ("Typing :: Typed", "Operating System :: OS Independent", "Framework :: AsyncIO")
STEP_TIMEOUT = 600.0


class CheckFailed(Exception):
    """One check failed: the message says what, ``detail`` shows the output that says why."""

    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.detail = detail


class Checks:
    def __init__(self) -> None:
        self.passed = 0
        self.started = time.monotonic()

    def ok(self, what: str) -> None:
        self.passed += 1
        print(f"  ok  {what}", flush=True)

    def step(self, title: str) -> None:
        print(f"[{time.monotonic() - self.started:5.1f}s] {title}", flush=True)


def run(
    cmd: Sequence[str | Path],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    expect: int | None = 0,
    timeout: float = STEP_TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    args = [str(c) for c in cmd]
    try:
        done = subprocess.run(
            args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired as exc:
        raise CheckFailed(f"`{shlex.join(args)}` did not finish within {timeout:.0f} s") from exc
    except OSError as exc:
        raise CheckFailed(f"`{shlex.join(args)}` could not start: {exc}") from exc
    if expect is not None and done.returncode != expect:
        raise CheckFailed(
            f"`{shlex.join(args)}` exited {done.returncode} (expected {expect})", output(done.stdout, done.stderr)
        )
    return done


def output(stdout: str, stderr: str) -> str:
    return f"--- stdout ---\n{stdout.rstrip()}\n--- stderr ---\n{stderr.rstrip()}"


def expect(condition: bool, message: str, detail: str = "") -> None:
    if not condition:
        raise CheckFailed(message, detail)


# --------------------------------------------------------------------------------------------- building


def package_files() -> list[str]:
    """Every file of src/ductape_jobs, relative to src/ (no caches)."""
    files = []
    for path in sorted(PACKAGE_DIR.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            files.append(path.relative_to(ROOT / "src").as_posix())
    return files


def build(checks: Checks, dist: Path) -> tuple[Path, Path]:
    checks.step("build the sdist, then the wheel from it (python -m build)")
    run([sys.executable, "-m", "build", "--outdir", dist, ROOT])
    sdists, wheels = sorted(dist.glob("*.tar.gz")), sorted(dist.glob("*.whl"))
    expect(len(sdists) == 1 and len(wheels) == 1, f"expected one sdist and one wheel in {dist}: {os.listdir(dist)}")
    checks.ok(f"built {sdists[0].name} and {wheels[0].name}")
    return sdists[0], wheels[0]


def check_sdist(checks: Checks, sdist: Path) -> None:
    with tarfile.open(sdist) as tar:
        names = {m.name.partition("/")[2] for m in tar.getmembers() if m.isfile()}
    wanted = ["LICENSE", "README.md", "pyproject.toml", *(f"src/{f}" for f in package_files())]
    missing = [f for f in wanted if f not in names]
    expect(not missing, f"the sdist lacks {len(missing)} file(s): {', '.join(missing[:20])}")
    checks.ok(f"sdist holds LICENSE, README.md, pyproject.toml and all {len(wanted) - 3} files of src/ductape_jobs")


def check_wheel_contents(checks: Checks, wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        dist_info = next(n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info"))
        metadata = zf.read(f"{dist_info}/METADATA").decode()
        entry_points = zf.read(f"{dist_info}/entry_points.txt").decode()
    files = package_files()
    missing = [f for f in files if f not in names]
    expect(not missing, f"the wheel lacks {len(missing)} file(s): {', '.join(missing[:20])}")
    for required in REQUIRED_IN_PACKAGE:
        expect(f"ductape_jobs/{required}" in names, f"the wheel lacks ductape_jobs/{required}")
    strays = sorted({n.split("/")[0] for n in names} - {"ductape_jobs", dist_info})
    expect(not strays, f"the wheel holds more than ductape_jobs/ and its .dist-info: {strays}")
    expect(f"{dist_info}/licenses/LICENSE" in names, f"the wheel lacks {dist_info}/licenses/LICENSE")
    expect(
        re.search(r"^ductape\s*=\s*ductape_jobs\.cli\.main:cli$", entry_points, re.M) is not None,
        "the wheel's entry_points.txt has no `ductape` console script",
        entry_points,
    )
    checks.ok(f"wheel holds all {len(files)} files of src/ductape_jobs (static, .sql, migrations, py.typed), LICENSE")
    check_metadata(checks, metadata)


def check_metadata(checks: Checks, text: str) -> None:
    meta = email.message_from_string(text, policy=email.policy.compat32)
    expect(meta["Name"] == NAME, f"METADATA Name is {meta['Name']!r}, not {NAME!r}")
    for field in ("Version", "Summary", "Requires-Python", "License-Expression", "License-File"):
        expect(bool(meta.get(field)), f"METADATA has no {field}", text[:2000])
    expect(meta["License-Expression"] == "MIT", f"METADATA License-Expression is {meta['License-Expression']!r}")
    expect(meta.get("Description-Content-Type", "").startswith("text/markdown"), "METADATA: the readme is not markdown")
    expect("## Quickstart" in str(meta.get_payload()), "METADATA's description is not the README")
    classifiers = meta.get_all("Classifier") or []
    lacking = [c for c in CLASSIFIERS if c not in classifiers]
    expect(not lacking, f"METADATA lacks the classifier(s) {lacking}")
    expect(any(c.startswith("Programming Language :: Python :: 3.") for c in classifiers), "no Python version")
    extras = set(meta.get_all("Provides-Extra") or [])
    expect(set(EXTRAS) <= extras, f"METADATA's extras {sorted(extras)} lack some of {EXTRAS}")
    checks.ok(f"METADATA: license MIT + LICENSE, {len(classifiers)} classifiers, extras {', '.join(sorted(extras))}")


def twine_check(checks: Checks, dist: Path) -> None:
    try:
        import twine  # type: ignore[import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        print("  --  twine is not installed: `twine check` skipped (METADATA was read above)", flush=True)
        return
    run([sys.executable, "-m", "twine", "check", "--strict", *sorted(dist.iterdir())])
    checks.ok("twine check --strict")


# ------------------------------------------------------------------------------------------- a fresh venv


def make_venv(checks: Checks, python: str, where: Path) -> Path:
    checks.step(f"fresh venv ({python}) at {where.name}")
    run([python, "-m", "venv", where])
    bin_dir = where / ("Scripts" if os.name == "nt" else "bin")
    version = run([bin_dir / "python", "-c", "import sys; print(sys.version.split()[0])"]).stdout.strip()
    checks.ok(f"venv with Python {version}")
    return bin_dir


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without this venv's traces, so the new venv's own packages are the only ones seen."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    path = [p for p in env.get("PATH", "").split(os.pathsep) if not p.startswith(str(ROOT / ".venv"))]
    env["PATH"] = os.pathsep.join(path)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["COLUMNS"] = "200"  # tables unwrapped, as on a wide terminal
    env.update(extra)
    return env


def quickstart_blocks(readme: str) -> tuple[str, list[list[str]]]:
    """The Quickstart section's ``app.py`` block and the ``ductape ...`` commands of the bash block after it."""
    match = re.search(r"^## Quickstart\n(.*?)(?=^## )", readme, re.S | re.M)
    expect(match is not None, "README.md has no '## Quickstart' section")
    assert match is not None
    blocks = re.findall(r"^```(\w*)\n(.*?)^```", match.group(1), re.S | re.M)
    apps = [i for i, (lang, body) in enumerate(blocks) if lang == "python" and body.startswith("# app.py")]
    expect(len(apps) == 1, "README.md's Quickstart has no (or more than one) ```python block starting '# app.py'")
    app = blocks[apps[0]][1]
    commands = []
    for lang, body in blocks[apps[0] + 1 :]:
        if lang == "bash":
            for line in body.splitlines():
                words = shlex.split(line, comments=True)
                if words and words[0] == "ductape":
                    commands.append(words)
    return app, commands


def check_core(checks: Checks, bin_dir: Path, wheel: Path, work: Path) -> Path:
    checks.step(f"install {wheel.name} without extras")
    env = clean_env()
    run([bin_dir / "python", "-m", "pip", "install", "-q", wheel], env=env)
    probe = "import importlib.util, sys; print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m)))"
    present = run([bin_dir / "python", "-c", probe, *EXTRA_MODULES], env=env).stdout.split()
    expect(not present, f"a plain install brought modules that only extras should: {present}")
    checks.ok("installed; none of the extras' modules is importable")

    shown = run([bin_dir / "ductape", "--help"], env=env)
    for command in ("worker", "serve", "schedule", "runs", "preview"):
        expect(re.search(rf"\b{command}\b", shown.stdout) is not None, f"`ductape --help` lists no {command!r}")
    checks.ok("`ductape --help`")

    app, commands = quickstart_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    quick = work / "quickstart"
    quick.mkdir()
    (quick / "app.py").write_text(app, encoding="utf-8")
    store = f"sqlite:///{work / 'quickstart.db'}"
    env = clean_env(DUCTAPE_STORE=store)
    checks.step("the README's Quickstart: python app.py (twice), then its ductape commands")
    for attempt in (1, 2):  # the second run finds the job defined and schedules again
        done = run([bin_dir / "python", "app.py"], cwd=quick, env=env, timeout=120)
        detail = output(done.stdout, done.stderr)
        expect(
            re.search(r"^job_\w+ scheduled \d{4}-\d\d-\d\d", done.stdout, re.M) is not None,
            f"app.py (run {attempt}) printed no `<job_id> scheduled <next_run_at>` line",
            detail,
        )
        expect(
            re.search(r"^report for \w+ \(run run_\w+, attempt 1\)$", done.stdout, re.M) is not None,
            f"app.py (run {attempt}): the function did not run (no `report for ... (run ..., attempt 1)`)",
            detail,
        )
        expect(
            re.search(r"DrainSummary\(completed=[1-9]\d*, failed=0\b", done.stdout) is not None,
            f"app.py (run {attempt}): drain() completed nothing, or something failed",
            detail,
        )
        expect(not done.stderr.strip(), f"app.py (run {attempt}) wrote to stderr", detail)
    checks.ok("python app.py: scheduled, ran `report for sales`, drained with no failure (twice)")
    scheduled = re.search(r"^(job_\w+) scheduled", done.stdout, re.M)
    assert scheduled is not None  # checked above
    job_id = scheduled.group(1)  # what the README's commands call JOB_ID

    for words in commands:
        words = [job_id if word == "JOB_ID" else word for word in words]
        if words[1] == "worker":
            check_worker(checks, bin_dir, words, quick, env)
            continue
        done = run([bin_dir / words[0], *words[1:]], cwd=quick, env=env, timeout=120)
        if words[1] == "schedules":
            expect("daily-report" in done.stdout, "`ductape schedules` does not list daily-report", done.stdout)
        checks.ok(f"`{shlex.join(words)}`")
    check_missing_extras(checks, bin_dir, quick, env)
    return quick


def check_worker(checks: Checks, bin_dir: Path, words: list[str], cwd: Path, env: dict[str, str]) -> None:
    """``ductape worker --app app:ductape`` runs until SIGTERM, then exits 0."""
    with running([bin_dir / words[0], *words[1:]], cwd, env, "worker") as (proc, log):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not re.search(r"worker \S+ started", log.read_text(errors="replace")):
            expect(proc.poll() is None, f"`{shlex.join(words)}` exited {proc.returncode}", log.read_text())
            time.sleep(0.2)
        expect(proc.poll() is None and time.monotonic() < deadline, "`ductape worker` logged no start", log.read_text())
        time.sleep(1.0)
        expect(proc.poll() is None, f"`{shlex.join(words)}` exited {proc.returncode}", log.read_text())
    checks.ok(f"`{shlex.join(words)}` ran, and stopped with exit 0 on SIGTERM")


def check_missing_extras(checks: Checks, bin_dir: Path, cwd: Path, env: dict[str, str]) -> None:
    """Without the extras, what needs one says which in one line, not a traceback."""
    done = run([bin_dir / "ductape", "serve", "--port", str(free_port())], cwd=cwd, env=env, expect=1, timeout=60)
    lines = done.stderr.strip().splitlines()
    expect(
        len(lines) == 1 and "`ductape serve` needs the api extra: pip install 'ductape-jobs[api]'" in lines[0],
        "`ductape serve` without the api extra did not say so in one line",
        output(done.stdout, done.stderr),
    )
    checks.ok(f"`ductape serve` without [api]: {lines[0]}")
    for code, extra in (
        ("from ductape_jobs.api import create_app", "api"),
        ("from ductape_jobs import Ductape; Ductape('postgresql://127.0.0.1:1/none')", "postgres"),
        ("from ductape_jobs import Ductape; Ductape('sqlite:///tracing.db', tracing=True)", "otel"),
    ):
        script = "\n".join(
            [
                "from ductape_jobs.extras import MissingExtraError",
                "try:",
                f"    {code}",
                "except MissingExtraError as e:",
                "    print(e)",
                "else:",
                "    raise SystemExit('no MissingExtraError')",
            ]
        )
        done = run([bin_dir / "python", "-c", script], cwd=cwd, env=env, timeout=60)
        expect(f"pip install 'ductape-jobs[{extra}]'" in done.stdout, f"`{code}` did not name the {extra} extra")
        checks.ok(f"`{code}`: {done.stdout.strip()}")


# ---------------------------------------------------------------------------------------- ductape serve


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextmanager
def running(
    cmd: Sequence[str | Path], cwd: Path, env: dict[str, str], name: str
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """Start ``cmd`` (output to a log file); on leaving, SIGTERM it and check it exits 0 within 30 s."""
    log = cwd / f"{name}.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [str(c) for c in cmd], cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT
        )
        try:
            yield proc, log
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise CheckFailed(f"{name} did not stop within 30 s of SIGTERM", log.read_text()) from None
    expect(proc.returncode == 0, f"{name} exited {proc.returncode} after SIGTERM (expected 0)", log.read_text())
    text = log.read_text(errors="replace")
    expect("Traceback" not in text, f"{name} logged a traceback", text)


def fetch(
    opener: urllib.request.OpenerDirector, url: str, *, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with opener.open(request, timeout=10) as answer:
            return answer.status, answer.headers.get("content-type", ""), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("content-type", ""), exc.read()


def check_api(checks: Checks, bin_dir: Path, wheel: Path, quick: Path) -> None:
    checks.step(f"install {wheel.name}[api]; ductape serve")
    env = clean_env(DUCTAPE_STORE=f"sqlite:///{quick.parent / 'quickstart.db'}")
    run([bin_dir / "python", "-m", "pip", "install", "-q", f"{wheel}[api]"], env=env)
    checks.ok("installed with the api extra")
    made = run([bin_dir / "ductape", "apikey", "create", "--name", "check-wheel", "--json"], cwd=quick, env=env)
    key = json.loads(made.stdout)["key"]
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cmd: list[str | Path] = [
        bin_dir / "ductape",
        "serve",
        "--app",
        "app:ductape",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with running(cmd, quick, env, "serve") as (proc, log):
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        wait_ready(proc, log, opener, base)
        expect(f"serving {base}" in log.read_text(), f"`ductape serve` did not log `serving {base}`", log.read_text())
        checks.ok(f"`ductape serve` is up at {base}")

        status, kind, body = fetch(opener, f"{base}/")
        expect(status == 200 and kind.startswith("text/html"), f"GET / answered {status} {kind}", body[:500].decode())
        expect(b'action="login"' in body and b'name="key"' in body, "GET / is not the dashboard's login page")
        checks.ok("GET / (the dashboard's login page)")

        status, kind, body = fetch(opener, f"{base}/openapi.json")
        expect(status == 200, f"GET /openapi.json answered {status}", body[:500].decode(errors="replace"))
        try:
            spec = json.loads(body)
        except ValueError as exc:
            raise CheckFailed(f"/openapi.json is not JSON: {exc}", body[:500].decode(errors="replace")) from None
        paths = spec.get("paths") if isinstance(spec, dict) else None
        if not isinstance(paths, dict) or "/api/v1/jobs" not in paths:
            raise CheckFailed("/openapi.json has no paths (or no /api/v1/jobs)", body[:500].decode(errors="replace"))
        checks.ok(f"GET /openapi.json (OpenAPI {spec.get('openapi')}, {len(paths)} paths)")

        for asset in ("app.css", "favicon.svg", "js/main.js"):
            status, _kind, body = fetch(opener, f"{base}/static/{asset}")
            expect(status == 200 and len(body) > 0, f"GET /static/{asset} answered {status}")
        checks.ok("GET /static/app.css, favicon.svg, js/main.js")

        form = urllib.parse.urlencode({"key": key}).encode()
        status, kind, body = fetch(
            opener, f"{base}/login", data=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        expect(status == 200 and b'src="static/js/main.js"' in body, f"logging in answered {status}, no page")
        checks.ok("POST /login with a key, then GET / (the dashboard)")

        status, kind, body = fetch(opener, f"{base}/api/v1/jobs", headers={"Authorization": f"Bearer {key}"})
        expect(status == 200 and b"daily-report" in body, f"GET /api/v1/jobs answered {status}", body[:500].decode())
        checks.ok("GET /api/v1/jobs with the key lists the Quickstart's daily-report")
    checks.ok("`ductape serve` stopped on SIGTERM with exit 0, no traceback")


def wait_ready(proc: subprocess.Popen[bytes], log: Path, opener: urllib.request.OpenerDirector, base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        expect(proc.poll() is None, f"`ductape serve` exited {proc.returncode} before answering", log.read_text())
        try:
            if fetch(opener, f"{base}/healthz")[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise CheckFailed(f"`ductape serve` did not answer {base}/healthz within 60 s", log.read_text())


# ---------------------------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--python", default=sys.executable, help="interpreter for the fresh venv (default: this one)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (printed) for a look")
    args = parser.parse_args(argv)
    checks = Checks()
    work = Path(tempfile.mkdtemp(prefix="ductape-check-wheel-"))
    try:
        sdist, wheel = build(checks, work / "dist")
        check_sdist(checks, sdist)
        check_wheel_contents(checks, wheel)
        twine_check(checks, work / "dist")
        bin_dir = make_venv(checks, args.python, work / "venv")
        quick = check_core(checks, bin_dir, wheel, work)
        check_api(checks, bin_dir, wheel, quick)
    except CheckFailed as exc:
        print(f"\ncheck-wheel: FAILED: {exc}", file=sys.stderr)
        if exc.detail:
            print(exc.detail.rstrip()[-6000:], file=sys.stderr)
        print(f"check-wheel: {checks.passed} passed, 1 failed", flush=True)
        return 1
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"check-wheel: done in {time.monotonic() - checks.started:.0f} s", flush=True)
    print(f"check-wheel: {checks.passed} passed, 0 failed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
