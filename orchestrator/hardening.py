"""Process hardening every Chorus process applies at start: other processes of its user cannot inspect it.

`/proc/<pid>/environ`, `/proc/<pid>/mem` and ptrace are open to any process of the same uid. A script
the worker starts runs as that uid when the worker is not root, so it could read the worker's (and
`chorus local`'s) environment: the database URL, the admin password, `SECRET_*` and the audit key.
`PR_SET_DUMPABLE=0` makes those files root-owned and ptrace refused for same-uid processes without
CAP_SYS_PTRACE (checked on Linux 6.x). The flag survives fork but is reset by execve, so each process
sets it itself (the CLI at start, the Celery worker from its `worker_init` signal) and a script, which is
exec'd with a scrubbed environment, gets nothing from it.
"""

from __future__ import annotations

import ctypes
import logging
import sys

logger = logging.getLogger(__name__)

_PR_SET_DUMPABLE = 4
_PR_GET_DUMPABLE = 3


def forbid_inspection() -> bool:
    """Make this process undumpable (its /proc files unreadable to its own uid); True when it is now so."""
    if not sys.platform.startswith("linux"):
        return False
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    if prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        logger.warning("prctl(PR_SET_DUMPABLE, 0) failed (errno %d): same-user processes can read this one's "
                       "environment", ctypes.get_errno())  # fmt: skip
        return False
    return bool(prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0) == 0)
