"""dcmtk's command-line tools, never pynetdicom's namesakes.

pynetdicom installs Python programs named ``storescu``, ``storescp``, ``echoscu`` ... in
the venv's ``bin``. Whenever the venv is on PATH they shadow dcmtk's, with other options,
other output and other speed: a benchmark "against dcmtk" would then measure pynetdicom
against itself. ``find_dcmtk(name)`` looks at every candidate on PATH and in /usr/bin
(where Debian's dcmtk puts them) and takes the first whose ``--version`` banner is
dcmtk's (``$dcmtk: storescp v3.6.7 2022-04-22 $``), by absolute path.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

DCMTK_BANNER = "$dcmtk:"


class DcmtkMissing(RuntimeError):
    """dcmtk's tool is not installed (only a namesake, or nothing, was found)."""


def _candidates(name: str) -> list[Path]:
    folders = os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin"]
    seen: list[Path] = []
    for folder in folders:
        path = Path(folder or ".") / name
        if path.is_file() and os.access(path, os.X_OK) and path.resolve() not in seen:
            seen.append(path.resolve())
    return seen


def version_banner(path: str | Path) -> str:
    """The first line ``path --version`` prints, or "" when it cannot run."""
    try:
        result = subprocess.run([str(path), "--version"], capture_output=True, text=True,
                                timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = result.stdout.strip().splitlines()
    return lines[0].strip() if lines else ""


@functools.cache
def find_dcmtk(name: str) -> str | None:
    """The absolute path of dcmtk's ``name``, or None when only namesakes exist."""
    return next((str(path) for path in _candidates(name)
                 if version_banner(path).startswith(DCMTK_BANNER)), None)


def require_dcmtk(name: str) -> str:
    """Like ``find_dcmtk``, but a missing tool is an error that says what was found."""
    path = find_dcmtk(name)
    if path is None:
        others = ", ".join(str(p) for p in _candidates(name)) or "nothing"
        raise DcmtkMissing(f"dcmtk's {name} is not installed (found: {others}, which is "
                           f"not dcmtk); install Debian's dcmtk (make test does)")
    return path
