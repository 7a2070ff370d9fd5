"""MkDocs hook: the CLI and REST references, generated from the code at build time.

- The CLI reference (``reference/cli.md``) is the ``--help`` of every ``ductape`` command, as typer prints it
  (run in-process with typer's ``CliRunner``). mkdocs-click cannot read it: typer 0.2x builds its commands on a
  Click of its own, which mkdocs-click does not recognise as Click commands.
- The REST reference (``reference/rest.md``) is rendered here, as Markdown, from ``create_app(...).openapi()``
  on a throwaway SQLite store, and the document itself is written beside it (``reference/openapi.json``).
  Nothing is fetched from the network.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from typing import Any

import typer.main
from mkdocs.config.defaults import MkDocsConfig
from mkdocs.structure.files import File, Files
from typer.testing import CliRunner

from ductape_jobs.cli.main import app as cli_app

HELP_ENV = {"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}

METHODS = ("get", "post", "put", "patch", "delete")


def openapi_document() -> dict[str, Any]:
    """The OpenAPI document of ``ductape serve``'s app, as ``GET /openapi.json`` answers it."""
    from ductape_jobs import Ductape
    from ductape_jobs.api import create_app

    with tempfile.TemporaryDirectory(prefix="ductape-docs-") as folder:
        dt = Ductape(f"sqlite:///{folder}/docs.db")
        try:
            document: dict[str, Any] = create_app(dt).openapi()
        finally:
            dt.close()
    return document


def _cell(text: object) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema:
        return " or ".join(_type(s) for s in schema["anyOf"])
    if "allOf" in schema and len(schema["allOf"]) == 1:
        return _type(schema["allOf"][0])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"array of {_type(schema.get('items', {}))}"
    if "enum" in schema:
        return f"{kind}: " + ", ".join(f"`{v}`" for v in schema["enum"])
    return str(kind)


def _operation(path: str, method: str, op: dict[str, Any]) -> list[str]:
    lines = [f"### `{method.upper()} {path}`", "", f"**{op.get('summary', '')}**", ""]
    if op.get("description"):
        lines += [op["description"], ""]
    scope = op.get("x-required-scope")
    lines += [f"Scope: `{scope}`." if scope else "Public: no API key needed.", ""]
    params = op.get("parameters", [])
    if params:
        lines += ["| parameter | in | type | required | description |", "| --- | --- | --- | --- | --- |"]
        for p in params:
            schema = p.get("schema", {})
            lines.append(
                f"| `{p['name']}` | {p['in']} | {_cell(_type(schema))} | {'yes' if p.get('required') else 'no'} "
                f"| {_cell(p.get('description') or schema.get('description', ''))} |"
            )
        lines.append("")
    body = op.get("requestBody")
    if body:
        content = body.get("content", {})
        for media, spec in content.items():
            lines += [f"Body (`{media}`): {_type(spec.get('schema', {}))}.", ""]
    lines += ["| answer | description | body |", "| --- | --- | --- |"]
    for status, answer in op.get("responses", {}).items():
        schemas = [_type(s.get("schema", {})) for s in answer.get("content", {}).values()]
        lines.append(f"| {status} | {_cell(answer.get('description', ''))} | {_cell(', '.join(schemas))} |")
    return [*lines, ""]


def _schema(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"### {name}", ""]
    if schema.get("description"):
        lines += [schema["description"], ""]
    props = schema.get("properties", {})
    if not props:
        return [*lines, f"Type: {_type(schema)}.", ""]
    required = set(schema.get("required", []))
    lines += ["| field | type | required | default | description |", "| --- | --- | --- | --- | --- |"]
    for field, spec in props.items():
        default = f"`{json.dumps(spec['default'])}`" if "default" in spec else ""
        lines.append(
            f"| `{field}` | {_cell(_type(spec))} | {'yes' if field in required else 'no'} | {_cell(default)} "
            f"| {_cell(spec.get('description', ''))} |"
        )
    return [*lines, ""]


def render_rest(document: dict[str, Any]) -> str:
    """The OpenAPI document as one Markdown page: the routes by tag, then the schemas."""
    info = document["info"]
    lines = [
        "# REST API reference",
        "",
        "<!-- generated at build time from create_app(...).openapi() by docs/hooks/reference.py -->",
        "",
        f"{info['title']} {info['version']}, OpenAPI {document['openapi']}. A running `ductape serve` answers the same",
        "document at `/openapi.json` and an interactive view at `/docs`; this build's copy is",
        "[openapi.json](openapi.json). `/healthz`, `/readyz`, `/metrics` and the dashboard are outside the document",
        "(see [Deploy on Kubernetes](../how-to/kubernetes.md)).",
        "",
        info.get("description", ""),
        "",
    ]
    by_tag: dict[str, list[tuple[str, str, dict[str, Any]]]] = {}
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                op = item[method]
                by_tag.setdefault((op.get("tags") or ["other"])[0], []).append((path, method, op))
    for tag, ops in by_tag.items():
        lines += [f"## {tag}", ""]
        for path, method, op in ops:
            lines += _operation(path, method, op)
    lines += ["## Schemas", ""]
    for name, schema in sorted(document.get("components", {}).get("schemas", {}).items()):
        lines += _schema(name, schema)
    return "\n".join(lines)


def cli_commands() -> Iterator[tuple[str, ...]]:
    """Every command path of ``ductape`` (``()`` is ``ductape`` itself), groups before their commands."""
    root = typer.main.get_command(cli_app)
    yield ()
    groups = getattr(root, "commands", {})
    for name in sorted(groups):
        yield (name,)
        for sub in sorted(getattr(groups[name], "commands", {})):
            yield (name, sub)


def cli_help(path: tuple[str, ...]) -> str:
    """``ductape PATH --help``, as a terminal 100 columns wide and without colours shows it."""
    result = CliRunner().invoke(cli_app, [*path, "--help"], env=HELP_ENV, prog_name="ductape")
    if result.exit_code != 0:
        raise RuntimeError(f"ductape {' '.join(path)} --help exited {result.exit_code}: {result.output}")
    return "\n".join(line.rstrip() for line in result.output.strip("\n").splitlines())


def render_cli() -> str:
    """One section per command, its ``--help`` in a text block."""
    lines = [
        "# CLI reference",
        "",
        "<!-- generated at build time from `ductape ... --help` by docs/hooks/reference.py -->",
        "",
        "Every command's `--help`, generated from the CLI itself when these pages are built. A command that reads",
        "or writes a store takes `--store URL` (default: the `--app`'s store, else `$DUCTAPE_STORE`, else",
        "`sqlite:///./ductape.db`; a store none was made in, a SQLite file that is not there or a PostgreSQL schema",
        "no process has used, is refused but by `worker`, `serve`, `demo`, `job create`, `feature run`,",
        "`apikey create` and `webhook create`, which make it) and, but `demo` and",
        "`apikey`, `--app MODULE:ATTR` (your `Ductape`, with its",
        "functions and products; also `$DUCTAPE_APP`). Exit codes: 0 on success, 2 for bad input (the message names",
        "the field), 1 otherwise (`drain`: also when a run failed for good).",
        "",
    ]
    for path in cli_commands():
        name = " ".join(("ductape", *path))
        lines += [f"{'#' * min(len(path) + 1, 3)} `{name}`", "", "```text", cli_help(path), "```", ""]
    return "\n".join(lines)


def on_files(files: Files, config: MkDocsConfig) -> Files:
    document = openapi_document()
    files.append(File.generated(config, "reference/cli.md", content=render_cli()))
    files.append(File.generated(config, "reference/rest.md", content=render_rest(document)))
    files.append(File.generated(config, "reference/openapi.json", content=json.dumps(document, indent=2)))
    return files


__all__ = ["cli_help", "on_files", "openapi_document", "render_cli", "render_rest"]
