"""The README is a landing page, the docs site builds strictly, and the references cover every setting and command."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from admin.cli import build_parser
from admin.reference import PAGES, all_commands, cli_markdown, configuration_markdown
from carmatch.config import Settings
from carmatch.dataset.demo import DEMO_COUNT

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
MAX_README_LINES = 250


def strict_build(project: Path, site: Path) -> subprocess.CompletedProcess[str]:
    """``mkdocs build --strict`` of ``project`` into ``site``, as make docs runs it."""
    mkdocs = Path(sys.executable).with_name("mkdocs")
    return subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(site)],
        cwd=project,
        capture_output=True,
        text=True,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
        timeout=300,
    )


def test_the_site_builds_with_broken_links_and_missing_pages_as_errors(tmp_path: Path) -> None:
    result = strict_build(ROOT, tmp_path / "site")
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "reference" / "configuration" / "index.html").is_file()


def test_a_broken_link_fails_the_strict_build(tmp_path: Path) -> None:
    """The check above can fail: the same build over a copy with one dead link is refused."""
    copy = tmp_path / "repo"
    (copy / "docs").mkdir(parents=True)
    (copy / "mkdocs.yml").write_text((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), encoding="utf-8")
    for page in (ROOT / "docs").rglob("*.md"):
        target = copy / "docs" / page.relative_to(ROOT / "docs")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(page.read_text(encoding="utf-8"), encoding="utf-8")
    with (copy / "docs" / "index.md").open("a", encoding="utf-8") as page:
        page.write("\nSee [the missing page](no-such-page.md).\n")
    result = strict_build(copy, tmp_path / "site")
    assert result.returncode != 0 and "no-such-page.md" in result.stdout + result.stderr


@pytest.mark.parametrize("name", sorted(PAGES))
def test_committed_reference_pages_are_what_the_code_generates(name: str) -> None:
    committed = (ROOT / "docs" / "reference" / f"{name}.md").read_text(encoding="utf-8")
    assert committed == PAGES[name](), f"docs/reference/{name}.md is out of date: run `make docs`"


def test_every_setting_is_in_the_configuration_reference() -> None:
    page = configuration_markdown()
    missing = [item.metadata["env"] for item in fields(Settings) if f"`{item.metadata['env']}`" not in page]
    assert not missing, f"settings missing from the reference: {missing}"
    assert all(item.metadata["help"] for item in fields(Settings)), "every setting says what it does"


def test_every_cli_command_is_in_the_cli_reference() -> None:
    page = cli_markdown()
    commands = all_commands(build_parser(prog="carmatch"))
    assert "carmatch index rebuild" in commands and "carmatch caption live" in commands
    missing = [command for command in commands if f"`{command}`" not in page]
    assert not missing, f"commands missing from the CLI reference: {missing}"


def test_the_readme_is_a_landing_page() -> None:
    assert len(README.splitlines()) <= MAX_README_LINES
    setup = README[README.index("## Set-up") :]
    first_block = re.search(r"```bash\n(.*?)```", setup, flags=re.DOTALL)
    assert first_block is not None
    commands = [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]
    assert commands == ["make run", "make test"]
    assert re.search(r"!\[[^\]]+\]\(docs/screenshots/[\w-]+\.png\)", README), "a screenshot near the top"


def test_every_file_the_readme_links_to_exists() -> None:
    links = re.findall(r"\]\(((?:docs|bench|tests|carmatch)/[^)#]*)", README)
    assert links, "the README links into the docs"
    missing = [link for link in links if not (ROOT / link).exists()]
    assert not missing, f"README links to missing files: {missing}"


def test_every_docs_page_is_in_the_readme() -> None:
    pages = {page.relative_to(ROOT).as_posix() for page in (ROOT / "docs").rglob("*.md")} - {"docs/index.md"}
    missing = sorted(page for page in pages if f"({page})" not in README)
    assert not missing, f"docs pages the README does not link: {missing}"


def test_the_readme_quotes_no_figure_that_lives_elsewhere() -> None:
    """Test counts and durations drift: pytest prints them. Demo sizes must be the code's."""
    assert not re.search(r"\b\d[\d,]*\s+(tests|passed)\b", README), "do not quote the test count"
    assert not re.search(r"\b\d+(\.\d+)?\s*(s|min|minutes|seconds)\b", README), "do not quote durations"
    defaults = re.findall(r"the default is ([\d,]+)", README)
    assert defaults and all(int(value.replace(",", "")) == DEMO_COUNT for value in defaults)


def test_the_benchmarks_page_is_what_the_bench_results_give() -> None:
    """No figure in the generated part of docs/benchmarks.md is typed by hand: bench/report.py writes it."""
    from bench import report

    assert report.main(["--check"]) == 0, "run python bench/report.py after a bench (or do not edit that part)"
