"""The documentation site (docs/, mkdocs.yml) is true: every ```python sample of its pages runs as written, every
page is in the navigation, and the generated references cover every CLI command and every HTTP route.

A sample runs in a fresh temporary directory, in a process of its own, on a SQLite store of its own
(``$DUCTAPE_STORE``); after it, each ``test_*`` function it defines is called (by pytest when one takes
fixtures), so a testing sample proves its assertions. A sample whose first line names a module
(``# main.py: ...``) is also written under that name for the samples after it on the same page, which may import
it. A sample after a ``<!-- runs on PostgreSQL -->`` comment gets a fresh schema of the PostgreSQL on
127.0.0.1:5432 as its store instead (``$DUCTAPE_TEST_POSTGRES_URL`` overrides it): skipped with the reason when
none answers there, failed under ``CI=true``. A sample after a ``<!-- runs twice: REASON -->`` comment (a script
the page says to run at every deploy) is run again on the same store, and must pass again. A sample may opt out only
with a visible ``<!-- not run: REASON -->`` comment on the line before it.
The build itself (``mkdocs build --strict``, warnings are errors) is ``make docs``, part of ``make test``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
NOT_RUN = re.compile(r"<!-- not run: (.+?) -->\s*$")
ON_POSTGRES = "<!-- runs on PostgreSQL -->"
TWICE = re.compile(r"<!-- runs twice: .+? -->\s*$")
PG_URL = os.environ.get("DUCTAPE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
MODULE = re.compile(r"# ([\w/]+\.py)\b")
RUNNER = """
import inspect, runpy, sys
namespace = runpy.run_path(sys.argv[1], run_name="__main__")
tests = {name: value for name, value in namespace.items() if name.startswith("test_") and callable(value)}
if any(inspect.signature(test).parameters for test in tests.values()):  # fixtures: let pytest run them
    import pytest
    sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-W", "error", sys.argv[1]]))
for name, test in tests.items():
    test()
    print(f"passed {name}")
"""


@dataclass(frozen=True)
class Sample:
    page: str
    line: int
    code: str
    skip_reason: str | None
    on_postgres: bool
    twice: bool = False

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def module(self) -> str | None:
        named = MODULE.match(self.code)
        return named.group(1) if named else None


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)


def samples() -> list[Sample]:
    found = []
    for page in pages():
        text = page.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1]
            reason = NOT_RUN.search(before)
            page_name, skip = str(page.relative_to(DOCS)), reason.group(1) if reason else None
            on_postgres, twice = before.strip() == ON_POSTGRES, TWICE.search(before) is not None
            found.append(Sample(page_name, line, match.group(1), skip, on_postgres, twice))
    return found


@pytest.mark.parametrize("sample", [s for s in samples() if s.skip_reason is None], ids=lambda s: s.id)
def test_sample_runs(sample: Sample, tmp_path: Path) -> None:
    for earlier in samples():
        if earlier.page == sample.page and earlier.line < sample.line and earlier.module:
            (tmp_path / earlier.module).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / earlier.module).write_text(earlier.code)
    script = tmp_path / "sample.py"
    script.write_text(sample.code)
    schema = "docs_" + re.sub(r"\W", "_", tmp_path.name).lower()[-40:] if sample.on_postgres else None
    store = _postgres_schema(schema) if schema else f"sqlite:///{tmp_path / 'jobs.db'}"
    env = {**os.environ, "DUCTAPE_STORE": store, "PYTHONPATH": str(tmp_path)}
    env.pop("DUCTAPE_PRODUCT_FILE", None)
    env.pop("DUCTAPE_APP", None)
    try:
        command = [sys.executable, "-c", RUNNER, str(script)]
        for run in ("", " run again")[: 2 if sample.twice else 1]:
            out = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90)
            assert out.returncode == 0, f"{sample.id}{run} failed:\n{out.stdout}\n{out.stderr}"
    finally:
        if schema:
            _drop_schema(schema)


def _postgres_schema(schema: str) -> str:
    """A PostgreSQL store URL on a fresh schema of its own (the test drops it after)."""
    from support import require_service

    require_service("PostgreSQL", "127.0.0.1", 5432)
    pytest.importorskip("psycopg", reason="PostgreSQL samples need the postgres extra")
    _drop_schema(schema)
    return f"{PG_URL}?schema={schema}"


def _drop_schema(schema: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def test_samples_exist_and_opt_outs_say_why() -> None:
    found = samples()
    assert len([s for s in found if s.skip_reason is None]) >= 10  # the extraction finds the samples
    for sample in found:
        if sample.skip_reason is not None:
            assert len(sample.skip_reason.split()) >= 2, f"{sample.id}: say why it is not run"


def _nav_files(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [f for item in node for f in _nav_files(item)]
    if isinstance(node, dict):
        return [f for value in node.values() for f in _nav_files(value)]
    return []


def _mkdocs_config() -> dict[str, Any]:
    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("tag:yaml.org,2002:python/", lambda loader, suffix, node: suffix)
    config: dict[str, Any] = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=Loader)
    return config


GENERATED = {"reference/cli.md", "reference/rest.md"}  # written by docs/hooks/reference.py at build time


def test_every_page_is_in_the_nav_and_every_nav_entry_exists() -> None:
    nav = set(_nav_files(_mkdocs_config()["nav"]))
    written = {str(p.relative_to(DOCS)) for p in pages()}
    assert written - nav == set(), "pages missing from mkdocs.yml's nav"
    assert nav - written - GENERATED == set(), "nav entries without a page"


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_reference_hook", DOCS / "hooks" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_has_every_command() -> None:
    import typer.main

    from ductape_jobs.cli.main import app

    hook = _hook()
    text = hook.render_cli()
    root = typer.main.get_command(app)
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        assert f"`ductape {name}`" in text
        assert f"Usage: ductape {name}" in text
        for sub in getattr(command, "commands", {}):
            assert f"`ductape {name} {sub}`" in text
    assert "--keep-completed" in text  # options are rendered, not only the usage line


def test_rest_reference_has_every_route() -> None:
    pytest.importorskip("fastapi", reason="the REST reference needs the api extra")
    hook = _hook()
    document = hook.openapi_document()
    text = hook.render_rest(document)
    for path, item in document["paths"].items():
        for method in item:
            assert f"### `{method.upper()} {path}`" in text
    for name in document["components"]["schemas"]:
        assert f"### {name}\n" in text
    assert "Scope: `admin`" in text  # the webhook routes' scope, from x-required-scope


def test_error_tree_in_the_python_reference_matches_the_classes() -> None:
    import ductape_jobs.errors
    import ductape_jobs.extras

    text = (DOCS / "reference" / "python.md").read_text()
    tree = text.split("## Errors", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    parents: list[tuple[int, type]] = []
    names = 0
    for line in tree.splitlines():
        name = re.search(r"[A-Z]\w+", line)
        assert name is not None, line
        cls = getattr(ductape_jobs.errors, name.group(0), None) or getattr(ductape_jobs.extras, name.group(0))
        depth = name.start()
        while parents and parents[-1][0] >= depth:
            parents.pop()
        if parents:
            assert issubclass(cls, parents[-1][1]), f"{cls.__name__} is not a {parents[-1][1].__name__}"
        parents.append((depth, cls))
        names += 1
    defined = [v for v in vars(ductape_jobs.errors).values() if isinstance(v, type) and issubclass(v, Exception)]
    assert names == len(defined)  # every error of errors.py (MissingExtraError among them)
