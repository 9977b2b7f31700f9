"""docker-compose.yaml is the deployment `dicom-ops cluster` runs: Debian's
docker-compose validates it, and every service's command and settings are the ones in
`dicom_ops.cluster.deployment` (no Docker daemon is needed for `config`)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
import yaml
from dicom_ops.cluster.deployment import (
    EMULATOR_COMMAND,
    FLOWER_COMMAND,
    ROLE_COMMANDS,
    place_settings,
    shared_settings,
)
from dicom_ops.config import REPO_ROOT

from tests.conftest import require_tool

PASSWORD = "compose-test-password"


@pytest.fixture(scope="module")
def compose(tmp_path_factory) -> dict:
    """`docker-compose config` of the file, with every profile, and an .env filled in."""
    tool = require_tool("docker-compose")
    folder = tmp_path_factory.mktemp("compose")
    shutil.copy(REPO_ROOT / "docker-compose.yaml", folder)
    shutil.copytree(REPO_ROOT / "include", folder / "include")
    example = (REPO_ROOT / "include" / "example.env").read_text()
    (folder / ".env").write_text(example.replace("POSTGRES_PASSWORD=change-me",
                                                 f"POSTGRES_PASSWORD={PASSWORD}"))
    result = subprocess.run([tool, "-f", "docker-compose.yaml", "--profile", "demo",
                             "--profile", "flower", "config"], cwd=folder,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)["services"]


def test_every_role_runs_the_clusters_command_with_its_settings(compose):
    expected_places = place_settings(postgres="postgres", redis="redis:6379",
                                     api_server="api-server:8080", data_root="/data",
                                     workers=2, password=PASSWORD)
    for role, command in ROLE_COMMANDS.items():
        service = compose[role]
        assert service["command"] == command, role
        environment = service["environment"]
        for key, value in {**shared_settings(), **expected_places}.items():
            assert environment.get(key) == value, f"{role}: {key}"


def test_the_optional_services_run_the_same_programs(compose):
    assert compose["flower"]["command"] == FLOWER_COMMAND
    assert compose["emulator"]["command"][:len(EMULATOR_COMMAND)] == EMULATOR_COMMAND
    assert compose["emulator"]["profiles"] == ["demo"]
    assert compose["flower"]["profiles"] == ["flower"]


def test_every_long_running_service_has_a_health_check_and_waits_for_its_peers(compose):
    for name, service in compose.items():
        if name == "init":
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
    for role in ROLE_COMMANDS:
        waits = compose[role]["depends_on"]
        assert waits["postgres"]["condition"] == "service_healthy"
        assert waits["redis"]["condition"] == "service_healthy"
        assert waits["init"]["condition"] == "service_completed_successfully"
    assert "dicom-ops db upgrade" in " ".join(compose["init"]["command"])


def test_the_listener_and_the_workers_share_one_data_root(compose):
    mounts = {role: [v for v in compose[role]["volumes"] if ":/data" in str(v)]
              for role in ("listener", "worker", "scheduler", "api-server")}
    assert len({str(v) for vs in mounts.values() for v in vs}) == 1, mounts
