"""The import contracts in `.importlinter` hold for the tree, and they can fail: a
violation planted in a copy of the package breaks the contract that forbids it, and a
module that no contract names is caught before it can slip past the rules."""

from __future__ import annotations

import ast
import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from dicom_ops.config import REPO_ROOT

CONFIG = REPO_ROOT / ".importlinter"
PACKAGE = REPO_ROOT / "plugins" / "dicom_ops"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

ADAPTERS = "dicom_ops.airflow"
DEV_ONLY = (
    "dicom_ops.devtools",
    "dicom_ops.commands.emulator",
    "dicom_ops.commands.sample",
    "dicom_ops.commands.demo",
)
# Package __init__ files that hold only a docstring. A contract cannot name them without
# naming their whole package, which holds modules that contract must exempt.
UNNAMED_INITS = frozenset({"dicom_ops", "dicom_ops.commands"})
# What each forbidden contract leaves out of its source modules, on purpose.
EXEMPT = {
    "core-without-airflow": (ADAPTERS,),
    "runtime-without-devtools": DEV_ONLY,
    "core-without-web-server": (ADAPTERS, *DEV_ONLY),
}


def contract(contract_id: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read(CONFIG)
    return parser[f"importlinter:contract:{contract_id}"]


def listed(contract_id: str, option: str) -> list[str]:
    return contract(contract_id)[option].split()


def within(module: str, packages: tuple[str, ...] | list[str]) -> bool:
    return any(module == package or module.startswith(f"{package}.") for package in packages)


def package_modules() -> set[str]:
    """Every importable module of dicom_ops (folders without ``__init__.py``, such as the
    Alembic migrations, are not packages and are not imported by name)."""
    modules = set()
    for path in PACKAGE.rglob("*.py"):
        folders = path.relative_to(PACKAGE.parent).parent.parts
        if not all((PACKAGE.parent.joinpath(*folders[:depth]) / "__init__.py").exists()
                   for depth in range(1, len(folders) + 1)):
            continue
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        modules.add(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return modules


def copy_of_the_tree(root: Path) -> Path:
    shutil.copytree(PACKAGE, root / "plugins" / "dicom_ops",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(CONFIG, root / ".importlinter")
    return root


def plant(root: Path, module_path: str, import_line: str) -> None:
    target = root / "plugins" / "dicom_ops" / module_path
    target.write_text(f"{target.read_text()}\n{import_line}  # planted by test_layering\n")


def lint_imports(root: Path) -> tuple[int, str]:
    """`lint-imports` as `make lint` runs it, against the tree at ``root``; the output
    with white space folded (rich wraps long lines)."""
    environment = {**os.environ, "PYTHONPATH": str(root / "plugins"), "COLUMNS": "200",
                   "NO_COLOR": "1"}
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(root / ".importlinter")],
        cwd=root, env=environment, capture_output=True, text=True, timeout=120)
    return result.returncode, " ".join((result.stdout + result.stderr).split())


def test_the_tree_keeps_every_contract():
    returncode, output = lint_imports(REPO_ROOT)

    assert returncode == 0, output
    assert "0 broken" in output


def test_an_untouched_copy_keeps_every_contract(tmp_path):
    # The copy is what the planted tests change: it must pass as it is.
    returncode, output = lint_imports(copy_of_the_tree(tmp_path))

    assert returncode == 0, output


@pytest.mark.parametrize(("contract_id", "module_path", "import_line", "chain"), [
    pytest.param("core-without-airflow", "intake/listener.py", "import airflow",
                 "dicom_ops.intake.listener -> airflow", id="airflow-in-intake"),
    pytest.param("runtime-without-devtools", "pipeline/export.py",
                 "from dicom_ops.devtools import synthetic",
                 "dicom_ops.pipeline.export -> dicom_ops.devtools.synthetic",
                 id="devtools-in-pipeline"),
    pytest.param("intake-without-delivery", "intake/readiness.py",
                 "from dicom_ops.delivery import cstore",
                 "dicom_ops.intake.readiness -> dicom_ops.delivery.cstore",
                 id="delivery-in-intake"),
    pytest.param("core-without-web-server", "deid/engine.py", "import fastapi",
                 "dicom_ops.deid.engine -> fastapi", id="fastapi-in-deid"),
    pytest.param("layers", "db/models.py", "from dicom_ops.jobs import lifecycle",
                 "dicom_ops.db.models -> dicom_ops.jobs.lifecycle", id="db-imports-jobs"),
])
def test_a_planted_import_breaks_the_contract_that_forbids_it(
        tmp_path, contract_id, module_path, import_line, chain):
    root = copy_of_the_tree(tmp_path)
    plant(root, module_path, import_line)

    returncode, output = lint_imports(root)

    assert returncode != 0
    assert f"{contract(contract_id)['name']} BROKEN" in output
    assert chain in output


def test_a_new_package_outside_the_layers_breaks_the_layers_contract(tmp_path):
    root = copy_of_the_tree(tmp_path)
    (root / "plugins" / "dicom_ops" / "reports.py").write_text('"""Placed in no layer."""\n')

    returncode, output = lint_imports(root)

    assert returncode != 0
    assert f"{contract('layers')['name']} BROKEN" in output
    assert "dicom_ops.reports" in output


@pytest.mark.parametrize("contract_id", sorted(EXEMPT))
def test_every_module_but_the_exempt_ones_is_a_source_of_the_contract(contract_id):
    sources = listed(contract_id, "source_modules")

    unnamed = {module for module in package_modules()
               if not within(module, sources) and not within(module, EXEMPT[contract_id])}

    assert unnamed <= UNNAMED_INITS, (
        f"name {sorted(unnamed - UNNAMED_INITS)} in source_modules of "
        f"[importlinter:contract:{contract_id}] in .importlinter")


@pytest.mark.parametrize("module", sorted(UNNAMED_INITS))
def test_package_inits_that_no_contract_names_import_nothing(module):
    init = PACKAGE.parent.joinpath(*module.split(".")) / "__init__.py"

    imports = [node for node in ast.walk(ast.parse(init.read_text()))
               if isinstance(node, ast.Import | ast.ImportFrom)
               and not (isinstance(node, ast.ImportFrom) and node.module == "__future__")]

    assert imports == [], f"{init} imports something: name it in the contracts"
