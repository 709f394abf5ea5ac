"""The one exception type of dexter.

Library code raises :class:`DexterError` for every problem a user can fix
(bad arguments, unreadable files, incompatible stores). The CLI turns it into
one clear line and a non-zero exit; ``dexter --debug`` shows the traceback.
"""

from __future__ import annotations


class DexterError(Exception):
    """A problem the user can act on; its message is one clear line."""


class DexterWarning(UserWarning):
    """Input that dexter reads, but not quite as written (pitches clamped to MIDI's range, a repeat
    count ignored); issued with :func:`warnings.warn`, its message is one line naming the file."""
