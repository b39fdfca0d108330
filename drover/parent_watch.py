"""Die with the process that started us (Linux PR_SET_PDEATHSIG), set up in the child itself.

A parent that starts services (tests, benchmarks, ``drover up``) names itself in
``DROVER_DIE_WITH_PARENT``. Setting the signal here, after exec, instead of in a
``preexec_fn`` keeps Python code out of the window between fork and exec: a
multi-threaded parent (gRPC's threads) can deadlock there, and without a
``preexec_fn`` subprocess can use vfork.
"""

from __future__ import annotations

import os
import signal

ENV = "DROVER_DIE_WITH_PARENT"
PR_SET_PDEATHSIG = 1


def arm() -> None:
    wanted = os.environ.pop(ENV, "")
    if not wanted.isdigit():
        return
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return
    if os.getppid() != int(wanted):  # the parent died before the signal was armed
        os.kill(os.getpid(), signal.SIGTERM)
