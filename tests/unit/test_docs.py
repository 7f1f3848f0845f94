"""The documentation: the README stays a short front page, every page of docs/ is in the
mkdocs site, the site builds with no warnings, and no link points at a missing file."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def _nav_pages() -> set[str]:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    return {page for item in config["nav"] for page in item.values()}


def test_the_readme_is_a_front_page_with_the_two_commands_first() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.encode()) < 12_000, "move reference material into docs/"
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in first_block.splitlines()] == [
        ["make", "demo"], ["make", "test"]]


def test_every_docs_page_is_in_the_site_navigation() -> None:
    assert _nav_pages() == {p.name for p in DOCS.glob("*.md")}


def test_the_readme_and_the_home_page_link_every_docs_page() -> None:
    for front, prefix in ((REPO / "README.md", "docs/"), (DOCS / "index.md", "")):
        linked = {target for target, _ in LINK.findall(front.read_text(encoding="utf-8"))}
        unlinked = {p.name for p in DOCS.glob("*.md") if p.name != "index.md"
                    and prefix + p.name not in linked}
        assert not unlinked, f"{front.name} does not link {sorted(unlinked)}"


def test_every_relative_link_points_at_a_file_that_exists() -> None:
    missing = []
    for page in [REPO / "README.md", *DOCS.glob("*.md")]:
        for target, _ in LINK.findall(page.read_text(encoding="utf-8")):
            if "://" not in target and not (page.parent / target).exists():
                missing.append(f"{page.relative_to(REPO)} -> {target}")
    assert not missing, missing


def test_the_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs", path=str(Path(sys.executable).parent))
    assert mkdocs, "mkdocs is in requirements.txt; run scripts/bootstrap.sh"
    done = subprocess.run([mkdocs, "build", "--strict", "--quiet", "-f", str(REPO / "mkdocs.yml"),
                           "-d", str(tmp_path / "site")], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "site" / "configuration" / "index.html").exists()
