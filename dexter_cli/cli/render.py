"""``dexter render``: not built yet (issue #4)."""

from __future__ import annotations

import typer

from ..errors import DexterError


def render(ctx: typer.Context) -> None:
    """Render an expressive performance (MIDI) of a score. (not available yet: issue #4)."""
    raise DexterError("`dexter render` is not available yet in this version (tracked in issue #4)")


def register(app: typer.Typer) -> None:
    app.command("render", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(render)
