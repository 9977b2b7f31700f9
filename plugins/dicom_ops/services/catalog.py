"""The installed services: every folder under ``DICOM_OPS_SERVICES_DIR``, loaded, or
with the reason it cannot be. One broken service never hides the others."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from dicom_ops.services.definition import ServiceDefinition, ServiceDefinitionError, load_service


@dataclass(frozen=True)
class InstalledService:
    name: str
    folder: Path
    definition: ServiceDefinition | None
    problems: tuple[str, ...] = ()

    @property
    def dag_id(self) -> str:
        # A folder name that is not a valid service name (a space, say) is a broken
        # service; its DAG id must still be valid, or no service's DAG would load.
        return "service_" + re.sub(r"[^A-Za-z0-9_.-]", "_", self.name)


def service_folders(services_dir: Path) -> list[Path]:
    """Folders that hold a service: not hidden, not ``__pycache__``-like, sorted by name."""
    if not services_dir.is_dir():
        return []
    return sorted(path for path in services_dir.iterdir()
                  if path.is_dir() and not path.name.startswith((".", "_")))


def installed_services(services_dir: Path) -> list[InstalledService]:
    found = []
    for folder in service_folders(services_dir):
        try:
            found.append(InstalledService(folder.name, folder, load_service(folder)))
        except ServiceDefinitionError as exc:
            found.append(InstalledService(folder.name, folder, None, tuple(exc.problems)))
    return found


def find_service(services_dir: Path, name: str) -> ServiceDefinition:
    """The named service's definition; ServiceDefinitionError when it is broken, KeyError
    when there is no such folder."""
    folder = services_dir / name
    if name not in {path.name for path in service_folders(services_dir)}:
        known = ", ".join(path.name for path in service_folders(services_dir)) or "none"
        raise KeyError(f"no service {name!r} in {services_dir} (installed: {known})")
    return load_service(folder)
