"""``dexter train``: not built yet (issue #3)."""

from __future__ import annotations

import typer

from ..errors import DexterError


def train(ctx: typer.Context) -> None:
    """Train the diffusion model on a codec store. (not available yet: issue #3)."""
    raise DexterError("`dexter train` is not available yet in this version (tracked in issue #3)")


def register(app: typer.Typer) -> None:
    app.command("train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(train)
