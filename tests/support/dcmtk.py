"""dcmtk's command-line tools, never pynetdicom's namesakes.

pynetdicom installs Python ``storescu``/``storescp``/``echoscu``... into the venv's
bin, which comes first on PATH in an activated venv: ``shutil.which`` would pick a tool
with other options and other output. ``dcmtk_tool(name)`` looks at every candidate on
PATH (and /usr/bin, where Debian's dcmtk puts them) and takes the first whose
``--version`` banner is dcmtk's (``$dcmtk: storescu v3.6.7 ...``). Missing: a failure
in CI, a skip elsewhere, like ``require_tool``.
"""

from __future__ import annotations

import functools
import os
import subprocess
from pathlib import Path

import pytest

DCMTK_BANNER = "$dcmtk:"


def _candidates(name: str) -> list[Path]:
    folders = os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin"]
    seen: list[Path] = []
    for folder in folders:
        path = Path(folder or ".") / name
        if path.is_file() and os.access(path, os.X_OK) and path.resolve() not in seen:
            seen.append(path.resolve())
    return seen


def _is_dcmtk(path: Path) -> bool:
    try:
        result = subprocess.run([str(path), "--version"], capture_output=True, text=True,
                                timeout=30, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return result.stdout.lstrip().startswith(DCMTK_BANNER)


@functools.cache
def _find(name: str) -> str | None:
    return next((str(path) for path in _candidates(name) if _is_dcmtk(path)), None)


def dcmtk_tool(name: str) -> str:
    """The absolute path of dcmtk's ``name`` (storescu, echoscu, storescp, dcmdump...)."""
    path = _find(name)
    if path is None:
        message = f"dcmtk's {name} is not installed (make test installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
