"""Loading a service's entry points (``module:function``, the module inside the service
folder) without putting service folders on ``sys.path``.

Each service folder is imported as its own package, ``dicom_ops_service_<name>``, so two
services may both have a ``worker.py``, and a service module imports its siblings
relatively (``from . import helpers``). Loading always re-reads the files: a service
edited in place runs its new code at the next parse or task.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import types
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dicom_ops.services.definition import JobDefinition


class EntryPointError(RuntimeError):
    """An entry point that cannot be loaded; the message names the key and the module."""


def package_name(folder: Path) -> str:
    return "dicom_ops_service_" + re.sub(r"\W", "_", folder.name)


def _fresh_package(folder: Path) -> str:
    name = package_name(folder)
    for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[loaded]
    package = types.ModuleType(name)
    package.__path__ = [str(folder)]
    package.__package__ = name
    sys.modules[name] = package
    return name


def load_entry_point(folder: Path, entry: str, key: str, *, fresh: bool = True
                     ) -> Callable[..., Any]:
    """The function ``entry`` (``module:function``) of the service in ``folder``."""
    module_name, _, function_name = entry.partition(":")
    relative = Path(*module_name.split("."))
    if not ((folder / relative).with_suffix(".py").is_file()
            or (folder / relative / "__init__.py").is_file()):
        raise EntryPointError(f"{key}: module {module_name!r} is not in the service folder "
                              f"(expected {relative}.py)")
    package = _fresh_package(folder) if fresh or package_name(folder) not in sys.modules \
        else package_name(folder)
    try:
        module = importlib.import_module(f"{package}.{module_name}")
    except (Exception, SystemExit) as exc:  # the service's own code: anything can happen
        raise EntryPointError(f"{key}: module {module_name!r} cannot be imported "
                              f"({type(exc).__name__}: {exc})") from None
    function = getattr(module, function_name, None)
    if function is None:
        raise EntryPointError(f"{key}: module {module_name!r} has no function "
                              f"{function_name!r}")
    if not callable(function):
        raise EntryPointError(f"{key}: {entry!r} is not a function")
    return function


def check_entry_points(folder: Path, jobs: Sequence[JobDefinition]) -> list[str]:
    """A problem per entry point that cannot be loaded (disabled jobs' too: a job is
    checked before someone enables it)."""
    problems = []
    _fresh_package(folder)
    for job in jobs:
        for key, entry in (("workerEntry", job.worker_entry),
                           ("registryEntry", job.registry_entry)):
            if entry is None:
                continue
            try:
                load_entry_point(folder, entry, key, fresh=False)
            except EntryPointError as exc:
                problems.append(f"job {job.job_name!r}: {exc}")
    return problems
