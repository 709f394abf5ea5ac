"""The one door to partitura: imports it with its warnings and logs silenced."""

from __future__ import annotations

import contextlib
import logging
import warnings
from typing import Iterator

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import partitura as pt  # noqa: F401  (re-exported)
    import partitura.musicanalysis  # noqa: F401
    from partitura.io.importparangonada import load_alignment_from_ASAP, load_parangonada_alignment  # noqa: F401

logging.getLogger("partitura").setLevel(logging.ERROR)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence partitura's warnings for the duration of the block."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
