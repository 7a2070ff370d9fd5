"""Building a run's context: the product and env it runs in, and its input with data piping resolved.

Two grammars: the caller's input (``schedule(input=...)``) may read its session, ``$Now`` and the functions;
the product's own definitions, resolved later by the executors against ``RunContext.scope``, may read
everything, including the resolved input, which they take as data.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from msgspec.structs import replace

from ductape_jobs.clock import Clock
from ductape_jobs.errors import PipingFailure
from ductape_jobs.executors.base import RunContext
from ductape_jobs.models import Run
from ductape_jobs.products import Products, expand
from ductape_jobs.redaction import Secrets

if TYPE_CHECKING:
    from ductape_jobs.piping import Scope
    from ductape_jobs.products.model import ProductSpec


class Expanding(Mapping[str, Any]):
    """A mapping whose ``${VAR}`` values are read from the environment only when looked up, so an unset
    variable fails just the runs that use it."""

    def __init__(self, raw: Mapping[str, Any], where: str, *, secrets: Secrets | None = None) -> None:
        self._raw = raw
        self._where = where
        self._secrets = secrets  # where an expanded secret is learned, to be masked in what the run writes

    def __getitem__(self, key: str) -> Any:
        value = expand(self._raw[key], f"{self._where}.{key}")
        if self._secrets is not None and isinstance(value, str):
            self._secrets.learn([value])
        return value

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class RunPreparer:
    """Turns a claimed run into the ``RunContext`` its executor receives."""

    def __init__(self, products: Products, clock: Clock) -> None:
        self.products = products
        self.clock = clock

    def scope(self, run: Run, product: ProductSpec | None) -> Scope:
        from ductape_jobs.piping import Scope  # loaded by the first run that resolves anything (not a plain FUNCTION's)

        now = self.clock.now()
        if product is None or run.env not in product.envs:
            return Scope(input=run.input, session=run.session, now=now)
        where = f"products.{product.tag}"
        variables = {
            tag: Expanding(app.envs[run.env].variables, f"{where}.apps.{tag}.envs.{run.env}.variables")
            for tag, app in product.apps.items()
            if run.env in app.envs
        }
        constants = {tag: app.constants for tag, app in product.apps.items()}
        secrets = Expanding(
            product.envs[run.env].secrets,
            f"{where}.envs.{run.env}.secrets",
            secrets=self.products.secrets.of(product.tag),
        )
        return Scope(
            input=run.input, session=run.session, variables=variables, constants=constants, secrets=secrets, now=now
        )

    def __call__(self, run: Run) -> RunContext:
        product = self.products.find(run.product_tag)
        if product is None and not _has_placeholder(run.input):
            return RunContext.of(run)  # the hot path of plain FUNCTION jobs: nothing to resolve
        from ductape_jobs.piping import CALLER_SOURCES, PipingError, PipingSyntaxError, Scope, resolve
        from ductape_jobs.piping.errors import located

        resolved = run.input
        if _has_placeholder(run.input):
            # The caller's input reads only its session and the time: never the product's secrets,
            # variables or constants, whatever text it holds (CALLER_SOURCES).
            caller = Scope(session=run.session, now=self.clock.now())
            try:
                resolved = resolve(run.input, caller, sources=CALLER_SOURCES)
            except (PipingError, PipingSyntaxError) as exc:
                raise PipingFailure(f"{located('input', exc.at)}: {exc}") from None
        scope = self.scope(run, product)
        return RunContext.of(run, resolved, product, replace(scope, input=resolved))


def _has_placeholder(value: Any) -> bool:
    if isinstance(value, str):
        return "$" in value
    if isinstance(value, dict):
        return any(_has_placeholder(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_placeholder(v) for v in value)
    return False
