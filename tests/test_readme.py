"""The README cannot rot silently: its tree names every part of the repository and of the engine, the files
it and the docs/ pages name exist, and the figures it copies from a generated page are that page's."""

from __future__ import annotations

import re
from pathlib import Path
from typing import List, Set

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "smbtrail"
README = (ROOT / "README.md").read_text(encoding="utf-8")
NOT_PARTS = {"README.md", "dist", "build"}  # the README itself; build output


def _tree() -> List[str]:
    """The lines of the code block under `## Architecture`."""
    section = README.split("\n## Architecture\n", 1)[1]
    return section.split("```\n", 2)[1].splitlines()


def _engine_parts_named() -> Set[str]:
    return {line.split()[0].rstrip("/") for line in _tree() if re.match(r"  \S", line)}


def _engine_parts() -> Set[str]:
    return {p.name if p.is_dir() else p.stem for p in SRC.iterdir()
            if (p.is_dir() and (p / "__init__.py").is_file()) or p.suffix == ".py"}


def test_tree_names_every_package_and_module_of_the_engine():
    named = {name[:-3] if name.endswith(".py") else name for name in _engine_parts_named()}
    assert named == _engine_parts(), "add the new package or module to the README's tree (or drop the gone one)"


def test_tree_names_every_top_level_part_of_the_repository():
    words = {word.split("/")[0] for word in re.findall(r"[\w./-]+", "\n".join(_tree()))}
    parts = {p.name for p in ROOT.iterdir() if not p.name.startswith(".") and not p.name.endswith(".egg-info")}
    missing = parts - NOT_PARTS - words
    assert missing == set(), "describe it in the README's tree"


def _named_files(text: str) -> Set[str]:
    return set(re.findall(r"`([\w./-]+\.(?:py|csv|md|sh|json|conf|spec))`", text))


def test_files_the_readme_and_docs_name_exist():
    """A path in backquotes is a file of the repository (or of the engine, or a lookup) that exists."""
    bases = (ROOT, SRC, ROOT / "lookups", ROOT / "src")
    texts = [README] + [p.read_text(encoding="utf-8") for p in sorted((ROOT / "docs").glob("*.md"))]
    named = {name for text in texts for name in _named_files(text) if "/" in name or name.endswith(".csv")}
    gone = {name for name in named if not any((base / name).exists() for base in bases)}
    assert gone == set()


def test_inference_figures_are_those_of_the_generated_page():
    block = README.split("<!-- inference-accuracy:start -->", 1)[1].split("<!-- inference-accuracy:end -->")[0]
    page = (ROOT / "docs" / "inference-accuracy.md").read_text(encoding="utf-8")
    figures = re.findall(r"\d\.\d\d \(\d+/\d+\)", block)
    assert len(figures) >= 4
    assert [f for f in figures if f not in page] == []
    shown, never = map(int, re.search(r"(\d+) labels are shown by default, (\d+) never", block).groups())
    assert (shown, never) == (page.count("| yes (>="), page.count("| no |"))
