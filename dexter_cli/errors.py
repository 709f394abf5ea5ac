"""The one exception type of dexter.

Library code raises :class:`DexterError` for every problem a user can fix
(bad arguments, unreadable files, incompatible stores). The CLI turns it into
one clear line and a non-zero exit; ``dexter --debug`` shows the traceback.
"""

from __future__ import annotations


class DexterError(Exception):
    """A problem the user can act on; its message is one clear line."""
