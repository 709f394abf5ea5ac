"""``dexter test``: not built yet (issue #5)."""

from __future__ import annotations

import typer

from ..errors import DexterError


def test(ctx: typer.Context) -> None:
    """Sample the test split of a codec store with a checkpoint. (not available yet: issue #5)."""
    raise DexterError("`dexter test` is not available yet in this version (tracked in issue #5)")


def register(app: typer.Typer) -> None:
    app.command("test", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(test)
