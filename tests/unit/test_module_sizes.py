"""No module of the runtime path is over about 400 lines without saying why: a sentence
in its docstring that starts with "Long because" (issue 11)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from dicom_ops.config import REPO_ROOT

PACKAGE = REPO_ROOT / "plugins" / "dicom_ops"
LINE_BUDGET = 400
REASON_MARKER = "Long because"
# Not the runtime path: the dev tools, and Alembic's generated migration scripts.
NOT_RUNTIME = (PACKAGE / "devtools", PACKAGE / "db" / "migrations")
_REASON = re.compile(rf"(?:\A|[.!?:]\s+|\n\s*){REASON_MARKER} \S")


def runtime_modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py")
                  if "__pycache__" not in path.parts
                  and not any(path.is_relative_to(folder) for folder in NOT_RUNTIME))


def says_why_it_is_long(docstring: str | None) -> bool:
    return bool(docstring) and _REASON.search(docstring) is not None


def test_the_reason_is_a_sentence_that_starts_with_the_marker():
    assert says_why_it_is_long("Reads files.\n\nLong because one pass must stay one pass.")
    assert says_why_it_is_long("Reads files. Long because one pass must stay one pass.")
    assert not says_why_it_is_long("Reads files that are long because scanners write much.")
    assert not says_why_it_is_long(None)


def test_the_walk_sees_the_runtime_path_and_not_the_dev_tools():
    modules = {path.relative_to(PACKAGE).as_posix() for path in runtime_modules()}

    assert {"intake/listener.py", "deid/rewriter.py", "airflow/hooks/draw.py"} <= modules
    assert not any(name.startswith(("devtools/", "db/migrations/")) for name in modules)


def test_every_long_runtime_module_says_why_it_is_long():
    unexplained = []
    for path in runtime_modules():
        text = path.read_text()
        lines = len(text.splitlines())
        if lines > LINE_BUDGET and not says_why_it_is_long(ast.get_docstring(ast.parse(text))):
            unexplained.append(f"{path.relative_to(REPO_ROOT)} ({lines} lines)")

    assert unexplained == [], (
        f"over {LINE_BUDGET} lines: split the module, or give its docstring a sentence "
        f"starting {REASON_MARKER!r} that says the true reason: {', '.join(unexplained)}")
