"""Torch-side access to a codec store: segments and transfer pairs as tensors.

Arrays stay memory-mapped; each item is copied out on access, so memory does not
grow with the store beyond its index.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import DexterError
from .store import CodecStore


class SegmentSet:
    """Segments of one split (raw codecs; the model normalises).

    Parameters
    ----------
    store : CodecStore
    split : str
        ``train``, ``valid`` or ``test``.
    synthetic : bool
        Include mixup segments (train only has them).
    """

    def __init__(self, store: CodecStore, split: str, synthetic: bool = True):
        self.store = store
        self.indices = store.split_indices(split, synthetic=synthetic)

    def __len__(self) -> int:
        return len(self.indices)

    def batch(self, items: np.ndarray) -> dict[str, torch.Tensor]:
        """Stack the segments at positions ``items`` (into ``self.indices``)."""
        segs = [self.store.segment(int(self.indices[i])) for i in items]
        return {k: torch.from_numpy(np.stack([s[k] for s in segs])) for k in segs[0]}


class PairSet:
    """Transfer pairs (source segment, target segment) of one split, from ``pairs.npy``.

    Parameters
    ----------
    store : CodecStore
    split : str
    """

    def __init__(self, store: CodecStore, split: str):
        path = Path(store.path) / "pairs.npy"
        if not path.is_file():
            raise DexterError(f"no pairs file {path}: run `dexter pair --data {store.path}` before --target transfer")
        pairs = np.load(path, mmap_mode="r", allow_pickle=False)
        from .split import SPLITS

        split_of = np.asarray(store.seg_split)
        self.store = store
        self.pairs = np.asarray(pairs[split_of[pairs[:, 1]] == SPLITS.index(split)])

    def __len__(self) -> int:
        return len(self.pairs)

    def batch(self, items: np.ndarray) -> dict[str, torch.Tensor]:
        """Target codecs plus ``source_p``/``source_c``; mask = notes both played."""
        out = {"p_codec": [], "s_codec": [], "c_codec": [], "mask": [], "source_p": [], "source_c": []}
        for i in items:
            src, tgt = (self.store.segment(int(j)) for j in self.pairs[int(i)])
            for k in ("p_codec", "s_codec", "c_codec"):
                out[k].append(tgt[k])
            out["mask"].append(tgt["mask"] & src["mask"])
            out["source_p"].append(src["p_codec"])
            out["source_c"].append(src["c_codec"])
        return {k: torch.from_numpy(np.stack(v)) for k, v in out.items()}
