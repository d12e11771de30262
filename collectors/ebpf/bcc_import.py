"""Import BCC, which Debian ships for the system Python only.

BCC's Python module (package python3-bpfcc) is pure Python over libbcc and
lives in the system's dist-packages; a virtualenv reaches it by appending that
directory to sys.path (appended, so the venv's own packages still win).
"""

from __future__ import annotations

import sys
from types import ModuleType

SYSTEM_DIST_PACKAGES = "/usr/lib/python3/dist-packages"
SETUP_HINT = "run scripts/setup-ebpf.sh as root (installs python3-bpfcc and kernel headers)"


class BccUnavailable(RuntimeError):
    """BCC cannot be imported; the message says why and how to fix it."""


def import_bcc() -> ModuleType:
    try:
        import bcc  # type: ignore[import-not-found]
        return bcc
    except ImportError:
        pass
    if SYSTEM_DIST_PACKAGES not in sys.path:
        sys.path.append(SYSTEM_DIST_PACKAGES)
    try:
        import bcc  # type: ignore[import-not-found]
    except ImportError as exc:
        raise BccUnavailable(f"cannot import bcc ({exc}): {SETUP_HINT}") from None
    except OSError as exc:  # libbcc.so missing or broken
        raise BccUnavailable(f"cannot load libbcc ({exc}): {SETUP_HINT}") from None
    return bcc


def bcc_problem() -> str | None:
    """Why eBPF collection cannot start here, or None when it can."""
    import os

    if os.geteuid() != 0:
        return "eBPF collection needs root"
    try:
        import_bcc()
    except BccUnavailable as exc:
        return str(exc)
    return None
