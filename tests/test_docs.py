"""The documentation: a short README, pages whose generated tables build from the committed
results, links that resolve, and no figure typed by hand on the benchmarks page. (The site itself
is built and crawled in CI: ``mkdocs build --strict`` and ``docs/check_site.py``.)"""

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.rglob("*.md"))


def hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_is_a_landing_page():
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 250
    text = "\n".join(lines)
    for needed in ("pip install torch==2.13.0", "python -m pytest -q", "mkdocs", "Deep Reinforcement Learning"):
        assert needed in text


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_generated_table_builds_from_the_committed_results(page):
    class Page:  # what MkDocs hands the hook
        class file:
            src_path = str(page.relative_to(DOCS))

    source = page.read_text()
    markers = hooks().MARKER.findall(source)
    built = hooks().on_page_markdown(source, Page, None, None)
    assert "<!-- rlrun:" not in built
    for name, _ in markers:
        assert name in hooks().MAKERS


def test_an_unknown_marker_fails_the_build():
    class Page:
        class file:
            src_path = "x.md"

    with pytest.raises(ValueError, match="unknown marker rlrun:nonsense"):
        hooks().on_page_markdown("<!-- rlrun:nonsense -->", Page, None, None)


def prose(markdown: str) -> str:
    """The text a reader reads as prose: without code blocks, code spans, markers, links' targets
    and image lines."""
    text = re.sub(r"```.*?```", "", markdown, flags=re.DOTALL)
    text = re.sub(r"`[^`]*`", "", text)
    text = re.sub(r"<!--.*?-->", "", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return text


def test_the_benchmarks_page_types_no_figure_by_hand():
    text = prose((DOCS / "benchmarks.md").read_text())
    # an env id's version, "1M steps", "10 deterministic episodes", "95%" and "0.8" (the target)
    # are words of the method; a measured figure would be a decimal or a number of 3+ digits
    figures = re.findall(r"(?<![\w.-])(?:\d+\.\d+|\d{3,}|\d{1,3}(?:,\d{3})+)(?![\w-])", text)
    assert set(figures) <= {"0.8"}, figures


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_relative_link_and_image_of_a_page_resolves(page):
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = target.split("#")[0]
        assert (page.parent / path).exists(), f"{page.relative_to(DOCS)}: {target}"


def test_the_readmes_results_table_is_the_generated_one():
    readme = (ROOT / "README.md").read_text()
    assert "<!-- rlrun:headline:start -->" in readme
    assert hooks().readme_with_headline(readme) == readme, "run: python docs/hooks.py"
