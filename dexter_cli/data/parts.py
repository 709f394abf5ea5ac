"""Per-performance and per-score results on disk (``<store>/parts/``).

Encoding writes one file per performance (or one error record) as soon as it
is done, atomically. They make a run resumable (finished performances are not
redone), let shards of a cluster job share the work, and are what the store is
assembled from.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from ..fileio import save_npz, write_json


def _h(key: str) -> str:
    return hashlib.sha1(key.encode("utf-8")).hexdigest()[:20]


class Parts:
    """The ``parts/`` folder of a store."""

    def __init__(self, store: Path):
        self.root = Path(store) / "parts"

    def perf_path(self, key: str) -> Path:
        return self.root / "perfs" / f"{_h(key)}.npz"

    def error_path(self, key: str) -> Path:
        return self.root / "errors" / f"{_h(key)}.json"

    def score_path(self, score_part: str) -> Path:
        return self.root / "scores" / f"{_h(score_part)}.npz"

    def done(self, key: str) -> bool:
        """Whether this performance was encoded or skipped already."""
        return self.perf_path(key).is_file() or self.error_path(key).is_file()

    def save_perf(self, key: str, meta: dict, p_codec: np.ndarray, c_codec: np.ndarray, mask: np.ndarray) -> None:
        save_npz(self.perf_path(key), p_codec=p_codec, c_codec=c_codec, mask=mask,
                 meta=np.array(json.dumps(meta)))

    def load_perf(self, key: str) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
        with np.load(self.perf_path(key), allow_pickle=False) as z:
            return json.loads(str(z["meta"])), z["p_codec"], z["c_codec"], z["mask"]

    def save_error(self, key: str, record: dict) -> None:
        write_json(self.error_path(key), record)

    def load_error(self, key: str) -> dict | None:
        path = self.error_path(key)
        return json.loads(path.read_text()) if path.is_file() else None

    def has_score(self, score_part: str) -> bool:
        return self.score_path(score_part).is_file()

    def save_score(self, score_part: str, s_codec: np.ndarray, note_ids: np.ndarray, onset_beat: np.ndarray) -> None:
        save_npz(self.score_path(score_part), s_codec=s_codec, note_ids=note_ids.astype(str),
                 onset_beat=onset_beat)

    def load_score(self, score_part: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        with np.load(self.score_path(score_part), allow_pickle=False) as z:
            return z["s_codec"], z["note_ids"], z["onset_beat"]
