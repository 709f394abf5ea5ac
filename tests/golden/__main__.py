"""``python -m tests.golden``: record the bundled model's golden renders on this machine."""

import sys

from tests.conftest import datasets_root
from tests.golden import machine, record

root = datasets_root()
done = record(root if root.is_dir() else None)
print(f"recorded {', '.join(done['scores'])} for {machine()}", file=sys.stderr)
