"""Recognising "the disk is full" behind the layers that re-wrap it (Beam re-raises a worker's
error as a new exception carrying its text; TensorFlow's file errors are not OSErrors), so the
step that hit it can say so in one line instead of a page of tracebacks."""
from __future__ import annotations

import errno
import os
from typing import Optional

DISK_ERRNOS = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS)


def disk_cause(err: BaseException) -> Optional[str]:
    """``"no space left on device"``, ``"file too large"``, ... when ``err`` or anything in its
    chain of causes is a write refused for lack of room (or a read-only disk); else None."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        text = (getattr(err, "message", None) or str(err)).lower()
        for code in DISK_ERRNOS:
            if getattr(err, "errno", None) == code or os.strerror(code).lower() in text:
                return os.strerror(code).lower()
        err = err.__cause__ or err.__context__
    return None
