"""A product's declaration is bounded before anything walks it: a product file that is not UTF-8, nests past
``MAX_FILE_DEPTH`` or expands past ``MAX_FILE_VALUES`` through its YAML aliases, and a product (added in Python
or read from a file) whose free-form values nest past ``MAX_DEPTH``, are a ``ValidationError`` naming the file or
the field, never a traceback, a ``RecursionError`` or an expansion that eats the memory; and nothing is loaded or
added."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ductape_jobs import Ductape, ValidationError
from ductape_jobs.cli.main import app as cli
from ductape_jobs.limits import MAX_DEPTH, MAX_FILE_DEPTH, MAX_FILE_VALUES, MAX_TIMEOUT_SECONDS
from ductape_jobs.products import Products

CLEAN_ENV: dict[str, str | None] = {"DUCTAPE_APP": None, "DUCTAPE_STORE": None, "DUCTAPE_PRODUCT_FILE": None}


def nested(levels: int) -> dict[str, Any]:
    """An object ``levels`` deep (``{"a": {}}`` is 2)."""
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"a": value}
    return value


def load_error(path: Path) -> ValidationError:
    with pytest.raises(ValidationError) as err:
        Products.load(path)
    return err.value


# --------------------------------------------------------------------------------------------- product files


def test_a_product_file_that_is_not_utf8_says_so(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"\xff\xfeproducts: []\n")
    err = load_error(path)
    assert err.field == "product_file"
    assert err.rule == f"{path} is not UTF-8 text (byte 0xff at offset 0)"


def test_the_cli_names_a_bad_product_file_in_one_line_and_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"\xff\xfeproducts: []\n")
    store = f"sqlite:///{tmp_path / 'jobs.db'}"
    Ductape(store).close()
    result = CliRunner().invoke(cli, ["--product-file", str(path), "schedules", "--store", store], env=CLEAN_ENV)
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: product_file: {path} is not UTF-8 text (byte 0xff at offset 0)\n"
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("name", "opening", "levels"),
    [("deep.yaml", "products: ", 5000), ("deep.json", '{"products": ', 5000), ("deep.toml", "products = ", 5000)],
)
def test_a_product_file_nested_thousands_deep_is_refused_not_a_recursion_error(
    tmp_path: Path, name: str, opening: str, levels: int
) -> None:
    path = tmp_path / name
    path.write_text(opening + "[" * levels + "]" * levels + ("}" if name.endswith(".json") else "") + "\n")
    err = load_error(path)
    assert err.field == "product_file"
    assert err.rule.startswith(f"{path} nests deeper than {MAX_FILE_DEPTH} levels")


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_a_product_file_nests_up_to_its_bound_and_not_one_level_more(tmp_path: Path, suffix: str) -> None:
    """The document is a level; so ``products`` may open ``MAX_FILE_DEPTH - 1`` more (refused then by the model,
    as any list of lists is, not by the bound)."""
    key = "products: " if suffix == ".yaml" else "products = "
    fits, over = tmp_path / f"fits{suffix}", tmp_path / f"over{suffix}"
    fits.write_text(key + "[" * (MAX_FILE_DEPTH - 1) + "]" * (MAX_FILE_DEPTH - 1) + "\n")
    over.write_text(key + "[" * MAX_FILE_DEPTH + "]" * MAX_FILE_DEPTH + "\n")
    assert "nests deeper" not in load_error(fits).rule
    assert f"nests deeper than {MAX_FILE_DEPTH} levels" in load_error(over).rule


def test_toml_dotted_keys_nested_thousands_deep_are_refused(tmp_path: Path) -> None:
    """A table header's dotted keys nest without tomllib recursing; the file's bound still holds."""
    path = tmp_path / "dotted.toml"
    path.write_text("[products" + ".a" * 5000 + "]\nx = 1\n")
    assert load_error(path).rule == f"{path} nests deeper than {MAX_FILE_DEPTH} levels"


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    """Nine levels of ten aliases each (a billion values once expanded) ran past 120 s and 11.7 GB: counted before
    anything expands them, they are refused."""
    lines = ["products:", "  - tag: p", "    envs: [e]", "    apps:", "      a:", "        constants:"]
    lines.append("          l0: &l0 [" + ", ".join(["x"] * 10) + "]")
    lines += [f"          l{n}: &l{n} [" + ", ".join([f"*l{n - 1}"] * 10) + "]" for n in range(1, 10)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    err = load_error(path)
    assert err.field == "product_file"
    assert err.rule.startswith(f"{path} holds more than {MAX_FILE_VALUES:,} values once its YAML aliases are expanded")


def test_yaml_anchors_aliases_and_merge_keys_are_read_as_yaml_means_them(tmp_path: Path) -> None:
    """Sharing an env's settings with ``&base`` / ``<<: *base`` is a YAML habit: refusing every alias (as the bomb's
    first fix did) broke such files."""
    path = tmp_path / "shared.yaml"
    path.write_text(
        "products:\n"
        "  - tag: shop\n"
        "    envs: [dev, prd, eu]\n"
        "    apps:\n"
        "      crm:\n"
        "        envs:\n"
        "          prd: &base {base_url: 'https://crm.example.com', headers: {x-team: ops}}\n"
        "          dev: {<<: *base, base_url: 'https://dev.crm.example.com'}\n"
        "          eu: *base\n"
        "        actions: {ping: {method: GET, path: /ping}}\n"
    )
    app = Products.load(path).get("shop").apps["crm"]
    assert app.envs["prd"].base_url == app.envs["eu"].base_url == "https://crm.example.com"
    assert app.envs["dev"].base_url == "https://dev.crm.example.com"
    assert app.envs["dev"].headers == app.envs["prd"].headers == {"x-team": "ops"}


@pytest.mark.parametrize(
    ("name", "text", "rule"),
    [
        (  # a second envs further down replaced the first: the product ran in prd only
            "twice.yaml",
            "products:\n  - tag: shop\n    envs: [dev]\n    functions: {f: {}}\n    envs: [prd]\n",
            "gives the name 'envs' twice in one mapping (line 5, column 5); give it once",
        ),
        (  # JSON is read as YAML: its objects alike
            "twice.json",
            '{"products": [{"tag": "a", "envs": ["e"]}], "products": []}',
            "gives the name 'products' twice in one mapping (line 1, column 45); give it once",
        ),
        (  # names YAML reads as one value, however written
            "numbers.yaml",
            "products:\n  - tag: shop\n    envs: [prd]\n    apps:\n      a:\n        constants: {1: a, 0x1: b}\n",
            "gives a name twice in one mapping (line 6, column 27: YAML reads it as a name before it, as it reads 1,"
            " 0x1, 1.0 and true as one); give it once",
        ),
        (  # a mapping that only a merge key brings in (never constructed on its own)
            "merged.yaml",
            "products:\n  - tag: shop\n    envs: [prd]\n    apps:\n      a:\n        constants:\n"
            "          one: {<<: &d {region: eu, tier: 1, region: us}, name: x}\n          two: {<<: *d}\n",
            "gives the name 'region' twice in one mapping (line 7, column 46); give it once",
        ),
        (  # a newline would end the CLI's one-line error and begin a forged line
            "lines.yaml",
            'products:\n  - tag: shop\n    envs: [prd]\n    webhooks: {"a\\nerror: x": 1, "a\\nerror: x": 2}\n',
            "gives the name 'a\\nerror: x' twice in one mapping (line 4, column 34); give it once",
        ),
        (  # what the name holds that would drive a terminal is shown escaped
            "escaped.yaml",
            'products:\n  - tag: shop\n    envs: [prd]\n    webhooks: {"\\e]0;x\\a": 1, "\\e]0;x\\a": 2}\n',
            "gives the name '\\x1b]0;x\\x07' twice in one mapping (line 4, column 31); give it once",
        ),
    ],
)
def test_a_name_given_twice_in_a_product_file_is_refused_saying_which_and_where(
    tmp_path: Path, name: str, text: str, rule: str
) -> None:
    """PyYAML kept the last of a name given twice (a caller's JSON refuses it: ``limits.read_json``); the file is
    refused, naming the name and where its second is written, and nothing is loaded."""
    path = tmp_path / name
    path.write_text(text)
    err = load_error(path)
    assert (err.field, err.rule) == ("product_file", f"{path} {rule}")


def test_a_merge_key_s_names_are_overridden_not_given_twice(tmp_path: Path) -> None:
    """``<<: *base`` then a name of its own: the mapping's own name wins, as YAML means (not a name given twice); a
    name the mapping writes twice beside a merge still is."""
    path = tmp_path / "merged.yaml"
    base = "products:\n  - tag: shop\n    envs: [prd]\n    apps:\n      a:\n        constants:\n"
    base += "          base: &b {x: 1, y: 2}\n"
    path.write_text(base + "          own: {<<: *b, x: 3}\n")
    assert Products.load(path).get("shop").apps["a"].constants["own"] == {"x": 3, "y": 2}
    path.write_text(base + "          own: {<<: *b, x: 3, x: 4}\n")
    assert "gives the name 'x' twice in one mapping (line 8, column 31)" in load_error(path).rule
    # merges of a list of mappings, one of them an alias, and a merged mapping that merges itself
    path.write_text(base + "          more: &m {<<: *b, z: 5}\n          own: {<<: [*m, {w: 6}], y: 7}\n")
    assert Products.load(path).get("shop").apps["a"].constants["own"] == {"x": 1, "y": 7, "z": 5, "w": 6}


@pytest.mark.parametrize("suffix", [".TOML", ".Toml"])
def test_a_toml_file_is_read_as_toml_whatever_the_case_of_its_suffix(tmp_path: Path, suffix: str) -> None:
    """``shop.TOML`` was read as YAML (a TOML table header is no YAML): its error named YAML's rules."""
    path = tmp_path / f"shop{suffix}"
    path.write_text('[[products]]\ntag = "shop"\nenvs = ["prd"]\n')
    assert list(Products.load(path).get("shop").envs) == ["prd"]
    path.write_text('[[products]]\ntag = "shop"\nenvs = [\n')
    assert load_error(path).rule.startswith(f"{path} is not valid toml: ")


def test_a_name_yaml_reads_as_text_only_in_a_mapping_is_read_so(tmp_path: Path) -> None:
    """A plain ``=`` is YAML's value tag, read as the text ``=`` where it names a value of a mapping (a review: the
    names were read before PyYAML's merge step that reads it so, and such a file was refused)."""
    path = tmp_path / "ops.yaml"
    path.write_text(
        "products:\n  - tag: shop\n    envs: [prd]\n    apps:\n      a:\n        constants:\n"
        "          ops: {=: eq, <: lt}\n"
    )
    assert Products.load(path).get("shop").apps["a"].constants["ops"] == {"=": "eq", "<": "lt"}


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("products: &p [*p]\n", "holds an alias of a value that holds it (line 1, column 11): it never ends"),
        (  # each alias one level deeper than the value it names: 70 levels once expanded, 2 as written
            "chain:\n  c0: &c0 [x]\n" + "".join(f"  c{n}: &c{n} [*c{n - 1}]\n" for n in range(1, 70)),
            f"nests deeper than {MAX_FILE_DEPTH} levels, its aliases expanded",
        ),
        (
            "products:\n  - tag: p\n    envs: [e]\n    constants: {day: 2024-02-30}\n",
            "holds a value that cannot be read",
        ),
    ],
)
def test_what_a_yaml_file_cannot_mean_is_refused_naming_it(tmp_path: Path, text: str, rule: str) -> None:
    """An alias inside what it names (a loop), aliases that nest past the file's bound once expanded, and a value
    the parser cannot make (a 30th of February: a ValueError traceback) are each a ValidationError."""
    path = tmp_path / "odd.yaml"
    path.write_text(text)
    assert rule in load_error(path).rule


@pytest.mark.parametrize("tag", ["!!bool", "!!timestamp", "!!int", "!!float"])
def test_a_yaml_value_its_tag_cannot_make_is_refused_saying_where_not_what(tmp_path: Path, tag: str) -> None:
    """PyYAML's constructors raised what they raised (a KeyError for ``!!bool``, an AttributeError for
    ``!!timestamp``: no ValidationError, a traceback at the CLI, a watch that ended), quoting the value (a secret)."""
    path = tmp_path / "tagged.yaml"
    path.write_text(f'products:\n  - tag: shop\n    envs: [prd]\n    secrets: {{k: {tag} "Rotated-Secret-77"}}\n')
    err = load_error(path)
    assert (err.field, err.rule) == (
        "product_file",
        f"{path} holds a value that cannot be read as {tag} (line 4, column 18)",
    )


def test_a_yaml_syntax_error_says_where_without_quoting_the_file(tmp_path: Path) -> None:
    """PyYAML's message quotes the line it stopped at: a secret written there (a new one, not yet known to be
    masked) was in the error, at the CLI and in ``serve``'s log."""
    path = tmp_path / "typo.yaml"
    path.write_text('products:\n  - tag: shop\n    envs: [prd]\n    secrets: {api: "Pr0d-Api-Secret-77", x: [}\n')
    err = load_error(path)
    assert "Pr0d" not in err.rule
    assert err.rule == (
        f"{path} is not valid yaml: while parsing a flow node: expected the node content, but found '}}' "
        "(line 4, column 46)"
    )


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("*Rotated-Secret-77", "found undefined alias '...' (line 5, column 12)"),
        ("!Rotated-Secret-77", "could not determine a constructor for the tag '...' (line 5, column 12)"),
        ("!Rotated!Secret-77", "found undefined tag handle '...' (line 5, column 12)"),
    ],
)
def test_a_yaml_error_quotes_no_alias_or_tag_the_file_wrote(tmp_path: Path, value: str, said: str) -> None:
    """An unquoted value that starts with ``*`` or ``!`` (a generated password) is an alias or a tag to YAML, and
    PyYAML's words quoted it whole: ``found undefined alias 'Rotated-Secret-77'``."""
    path = tmp_path / "star.yaml"
    path.write_text(f"products:\n  - tag: shop\n    envs: [prd]\n    secrets:\n      api: {value}\n")
    err = load_error(path)
    assert "Rotated" not in err.rule and err.rule.endswith(said), err.rule


def test_a_toml_integer_longer_than_python_reads_is_refused_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "big.toml"
    path.write_text("[[products]]\ntag = 'p'\nenvs = ['e']\n[products.constants]\nn = " + "9" * 5_000 + "\n")
    assert load_error(path).rule.startswith(f"{path} holds a value that cannot be read: Exceeds the limit")


def test_a_product_file_s_value_nested_past_max_depth_names_its_path(tmp_path: Path) -> None:
    """Within the file's bound, a free-form value is still bounded as a run's input is."""
    path = tmp_path / "deep-constants.yaml"
    value = "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1)
    path.write_text(f"products:\n  - tag: p\n    envs: [e]\n    apps:\n      a:\n        constants: {{c: {value}}}\n")
    err = load_error(path)
    assert err.field == "product_file.products[0].apps.a.constants.c" + "[0]" * (MAX_DEPTH - 1)
    assert err.rule == f"nests deeper than {MAX_DEPTH} levels"


def test_a_ductape_given_a_bad_product_file_raises_our_error(tmp_path: Path) -> None:
    path = tmp_path / "deep.toml"
    path.write_text("products = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ValidationError, match=r"^product_file: .* nests deeper than 64 levels$"):
        Ductape(f"sqlite:///{tmp_path / 'jobs.db'}", product_file=str(path))


# --------------------------------------------------------------------------------------------- products.add


def _product(**parts: Any) -> dict[str, Any]:
    return {"tag": "p", "envs": ["e"], **parts}


def _feature(event_input: dict[str, Any]) -> dict[str, Any]:
    event = {"type": "FUNCTION", "event": "f", "input": event_input}
    return {"functions": {"f": "m:f"}, "features": {"ft": {"sequence": [{"sequence_tag": "s", "events": [event]}]}}}


def _smtp_env() -> dict[str, Any]:
    return {"smtp": {"host": "mail", "sender": "a@b.c"}}


#: Each free-form value of a product, given a value, and the path of that value in the error.
FREE_VALUES = {
    "constants": (lambda v: _product(apps={"a": {"constants": v}}), "product.apps.a.constants"),
    "variables": (
        lambda v: _product(apps={"a": {"envs": {"e": {"base_url": "http://x", "variables": v}}}}),
        "product.apps.a.envs.e.variables",
    ),
    "query": (lambda v: _product(apps={"a": {"actions": {"x": {"query": v}}}}), "product.apps.a.actions.x.query"),
    "body": (lambda v: _product(apps={"a": {"actions": {"x": {"body": v}}}}), "product.apps.a.actions.x.body"),
    "push data": (
        lambda v: _product(notifications={"n": {"push": {"tokens": "t", "title": "t", "body": "b", "data": v}}}),
        "product.notifications.n.push.data",
    ),
    "callback body": (
        lambda v: _product(notifications={"n": {"callback": {"url": "http://x", "body": v}}}),
        "product.notifications.n.callback.body",
    ),
    "feature input": (lambda v: _product(**_feature(v)), "product.features.ft.sequence[0].events[0].input"),
}


@pytest.mark.parametrize("where", FREE_VALUES)
def test_products_add_refuses_a_value_nested_thousands_deep_naming_its_path(where: str) -> None:
    build, field = FREE_VALUES[where]
    products = Products()
    with pytest.raises(ValidationError) as err:
        products.add(build(nested(3000)))
    head, _, last = field.rpartition(".")  # (a channel's path names its model too: push.PushSpec.data)
    assert err.value.field.startswith(head) and err.value.field.endswith(f".{last}" + ".a" * MAX_DEPTH)
    assert err.value.rule == f"nests deeper than {MAX_DEPTH} levels"
    assert products.find("p") is None  # nothing added


@pytest.mark.parametrize("where", FREE_VALUES)
def test_a_product_s_value_nests_max_depth_levels_and_not_one_more(where: str) -> None:
    build, _ = FREE_VALUES[where]
    Products().add(build(nested(MAX_DEPTH)))
    with pytest.raises(ValidationError, match=f"nests deeper than {MAX_DEPTH} levels"):
        Products().add(build(nested(MAX_DEPTH + 1)))


def test_a_list_value_nested_too_deep_names_its_indexes() -> None:
    body: list[Any] = []
    for _ in range(MAX_DEPTH):
        body = [body]
    with pytest.raises(ValidationError) as err:
        Products().add(_product(apps={"a": {"actions": {"x": {"body": body}}}}))
    assert (
        str(err.value)
        == "product.apps.a.actions.x.body" + "[0]" * MAX_DEPTH + f": nests deeper than {MAX_DEPTH} levels"
    )


def test_a_product_whose_value_refers_to_itself_is_refused() -> None:
    """A cycle is nesting without end: refused at the bound, not walked forever."""
    constants: dict[str, Any] = {}
    constants["self"] = constants
    with pytest.raises(ValidationError, match=f"nests deeper than {MAX_DEPTH} levels"):
        Products().add(_product(apps={"a": {"constants": constants}}))


# --------------------------------------------------------------------------------------------- timeouts and ports

#: Each timeout a product declares, given a value, and its path in the error.
TIMEOUTS = {
    "database action": (
        lambda t: _product(databases={"d": {"actions": {"q": {"sql": "SELECT 1", "timeout": t}}}}),
        "product.databases.d.actions.q.timeout",
    ),
    "action": (lambda t: _product(apps={"a": {"actions": {"x": {"timeout": t}}}}), "product.apps.a.actions.x.timeout"),
    "smtp": (
        lambda t: {"tag": "p", "envs": {"e": {"smtp": {"host": "mail", "sender": "a@b.c", "timeout": t}}}},
        "product.envs.e.smtp.timeout",
    ),
}
SECONDS_RULE = f"must be seconds, > 0 and at most {MAX_TIMEOUT_SECONDS:,} (about 24.8 days)"


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        (float("inf"), SECONDS_RULE),
        ("inf", SECONDS_RULE),
        (float("nan"), SECONDS_RULE),
        (True, SECONDS_RULE),  # pydantic took it as 1.0 (a function's timeout refused it)
        ("5", SECONDS_RULE),  # and this as 5.0
        (1e300, SECONDS_RULE),
        (MAX_TIMEOUT_SECONDS + 1, SECONDS_RULE),
        (0, SECONDS_RULE),
        (-1, SECONDS_RULE),
    ],
)
@pytest.mark.parametrize("where", TIMEOUTS)
def test_a_timeout_that_no_run_could_use_is_refused_naming_it(where: str, value: Any, rule: str) -> None:
    build, field = TIMEOUTS[where]
    products = Products()
    with pytest.raises(ValidationError) as err:
        products.add(build(value))
    assert (err.value.field, err.value.rule) == (field, rule)
    assert products.find("p") is None


@pytest.mark.parametrize("where", TIMEOUTS)
def test_a_timeout_up_to_the_bound_is_kept(where: str) -> None:
    build, _ = TIMEOUTS[where]
    for value in (0.001, 30, MAX_TIMEOUT_SECONDS):
        Products().add(build(value))


@pytest.mark.parametrize(("port", "rule"), [(-1, "must be >= 1"), (0, "must be >= 1"), (65_536, "must be <= 65535")])
def test_an_smtp_port_outside_1_to_65535_is_refused(port: int, rule: str) -> None:
    with pytest.raises(ValidationError) as err:
        Products().add({"tag": "p", "envs": {"e": {"smtp": {"host": "mail", "sender": "a@b.c", "port": port}}}})
    assert (err.value.field, err.value.rule) == ("product.envs.e.smtp.port", rule)
    for kept in (1, 25, 65_535):
        Products().add({"tag": "p", "envs": {"e": {"smtp": {"host": "mail", "sender": "a@b.c", "port": kept}}}})


def test_a_product_file_s_unusable_timeout_names_its_path(tmp_path: Path) -> None:
    path = tmp_path / "timeouts.yaml"
    path.write_text(
        "products:\n  - tag: p\n    envs: [e]\n    databases:\n      d:\n        actions:\n"
        "          q: {sql: SELECT 1, timeout: .inf}\n"
    )
    err = load_error(path)
    assert err.field == "product_file.products[0].databases.d.actions.q.timeout"
    assert err.rule == SECONDS_RULE
    path.write_text("products = [{tag = 'p', envs = {e = {smtp = {host = 'm', sender = 's', timeout = 1e300}}}}]\n")
    path = path.rename(tmp_path / "timeouts.toml")
    err = load_error(path)
    assert (err.field, err.rule) == ("product_file.products[0].envs.e.smtp.timeout", SECONDS_RULE)


def test_a_rate_window_out_of_bounds_is_told_in_seconds_and_a_feature_event_retries_as_a_schedule(
    tmp_path: Path,
) -> None:
    """The rate's rule printed timedeltas (``1 day, 0:00:00, not 0:00:00``); a feature event's ``retries`` stopped at
    100 where a schedule's (which a JOB event's become) go to ``MAX_RETRIES``."""
    from ductape_jobs import FeatureEventTypes, IFeatureEvent
    from ductape_jobs.limits import MAX_RETRIES
    from ductape_jobs.resources import parse_rate

    for rate, asked in (("5/0s", "0 ms"), ("1/25h", "90000 s"), ("3/500ms", None)):
        if asked is None:
            assert parse_rate(rate, "rate").count == 3
            continue
        with pytest.raises(ValidationError) as err:
            parse_rate(rate, "rate")
        assert str(err.value) == f"rate: window must be between 1 ms and 1 day (86400 s), not {asked}"
    assert IFeatureEvent(type=FeatureEventTypes.JOB, event="j", retries=MAX_RETRIES).retries == MAX_RETRIES
    with pytest.raises(ValidationError, match=f"^retries: .*{MAX_RETRIES}"):
        IFeatureEvent(type=FeatureEventTypes.JOB, event="j", retries=MAX_RETRIES + 1)


@pytest.mark.parametrize(
    ("value", "what"),
    [
        ("!!binary aGVsbG8=", "is a bytes, not JSON data"),  # every run failed "bytes is not JSON serialisable"
        ("!!set {a: null}", "is a set, not JSON data"),  # a Python set: sent as a list, in no order
        (".nan", "must be a finite number"),  # every run failed "Out of range float values are not JSON compliant"
        ("-.inf", "must be a finite number"),
        ("!!float 1e400", "must be a finite number"),
        ("99999999999999999999999", "is beyond a signed 64-bit integer"),  # sent as is, past what an input may hold
    ],
)
def test_a_product_file_value_that_is_not_json_data_is_refused_when_the_file_is_read(
    tmp_path: Path, value: str, what: str
) -> None:
    """A product file's values are sent as JSON (an action's body, a constant piped into it). PyYAML's safe
    loader makes bytes, sets, ordered pairs, NaN and infinities and integers of any size from a tag or a plain
    scalar; they were loaded, and each run of the action then failed for good (or sent something the file did not
    mean), instead of the file being refused naming the value's path, as a value nested too deep is."""
    path = tmp_path / "odd.yaml"
    path.write_text(
        "products:\n"
        "  - tag: shop\n"
        "    envs: [dev]\n"
        "    apps:\n"
        "      orders:\n"
        f"        constants: {{x: {value}}}\n"
        "        envs: {dev: {base_url: 'https://orders.example.com'}}\n"
        "        actions: {create: {method: POST, path: /orders, body: {region: '$Constant{orders}{x}'}}}\n"
    )
    with pytest.raises(ValidationError) as refused:
        Products.load(path)
    assert (refused.value.field, refused.value.rule) == ("product_file.products[0].apps.orders.constants.x", what)
