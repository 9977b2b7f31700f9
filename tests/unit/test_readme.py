"""The README is part of the product: its settings table and quick start stay true."""

import re

from dicom_ops.config import REPO_ROOT, SETTINGS, settings_markdown

README = (REPO_ROOT / "README.md").read_text()


def test_readme_settings_table_is_the_generated_one():
    assert settings_markdown() in README, "regenerate with: dicom-ops config --markdown"


def test_every_setting_is_documented():
    for setting in SETTINGS:
        assert f"`{setting.env}`" in README


def test_quick_start_is_exactly_two_commands():
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```(?:sh|bash|console)?\n(.*?)```", section, re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip()]
    assert commands == ["make run", "make test"]


def test_the_jobs_page_section_shows_a_screenshot_that_exists():
    assert "](docs/jobs-page.png)" in README
    assert (REPO_ROOT / "docs" / "jobs-page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
