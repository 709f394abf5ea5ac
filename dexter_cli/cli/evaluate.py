"""``dexter evaluate``: not built yet (issue #5)."""

from __future__ import annotations

import typer

from ..errors import DexterError


def evaluate(ctx: typer.Context) -> None:
    """Evaluate renderers against every human performance of the test pieces. (not available yet: issue #5)."""
    raise DexterError("`dexter evaluate` is not available yet in this version (tracked in issue #5)")


def register(app: typer.Typer) -> None:
    app.command("evaluate", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(evaluate)
