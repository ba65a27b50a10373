"""The map matches the territory: every dotted name the README and docs/ put in backticks that
starts with ``notifier.`` or with a module of notifier/ (``usecases.notices.Notices.create``,
``domain.notices.too_late``) resolves to a real module and attribute; every page under docs/ is
listed in the index, docs/README.md; every relative link points at a file that exists."""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import notifier

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
MODULES = {info.name for info in pkgutil.iter_modules(notifier.__path__)}
# A file or host name is not an attribute: `settings.py`, `notifier.dump`, `notifier.example.org`.
EXTENSIONS = {"py", "toml", "md", "json", "csv", "txt", "j2", "html", "yaml", "yml", "db", "lock"}
EXTENSIONS |= {"dump", "org", "com"}
DOTTED = re.compile(r"(?<![\w./-])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+)")


def dotted_names(text: str) -> set[str]:
    """Dotted names in backticks (inline code or fenced blocks) under notifier or its modules."""
    spans = re.findall(r"```.*?```|`[^`\n]+`", text, flags=re.DOTALL)
    found = set()
    for span in spans:
        for name in DOTTED.findall(span):
            parts = name.split(".")
            if parts[-1] in EXTENSIONS:
                continue
            if parts[0] == "notifier" or parts[0] in MODULES:
                found.add(name if parts[0] == "notifier" else f"notifier.{name}")
    return found


def resolves(name: str) -> bool:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            target: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(target, attribute):
                return False
            target = getattr(target, attribute)
        return True
    return False


def names() -> list[tuple[str, str]]:
    return sorted(
        (str(page.relative_to(ROOT)), name)
        for page in PAGES
        for name in dotted_names(page.read_text())
    )


def test_the_docs_name_functions_at_all() -> None:
    assert len(names()) > 40


@pytest.mark.parametrize(("page", "name"), names())
def test_every_dotted_name_in_the_docs_exists(page: str, name: str) -> None:
    assert resolves(name), f"{page} names {name}, which does not exist: update the page"


def test_the_finder_sees_names_and_skips_file_names() -> None:
    text = "`usecases.notices.Notices.create` and `settings.py`, ```\nnotifier.logs.x\n```"
    assert dotted_names(text) == {"notifier.usecases.notices.Notices.create", "notifier.logs.x"}
    assert not resolves("notifier.logs.x")
    assert resolves("notifier.usecases.notices.Notices.create")


def test_every_page_under_docs_is_in_the_index() -> None:
    index = (DOCS / "README.md").read_text()
    listed = set(re.findall(r"\]\(([^)#]+\.md)\)", index))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md") if p.name != "README.md"}
    assert pages - listed == set(), "list these in docs/README.md"
    assert {"operate", "design", "develop"} <= {p.split("/")[0] for p in pages}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_at_files_that_exist(page: Path) -> None:
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{page.relative_to(ROOT)} links to missing {target}"


def test_the_readme_gives_the_two_commands_and_points_to_the_docs() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "docs/README.md" in readme
    # The front door: what each feature is and its one command or snippet; the rest in docs/.
    assert len(readme.splitlines()) < 200
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.MULTILINE)
    assert re.search(r"^test:", makefile, re.MULTILINE)
    assert "make test" in (ROOT / ".ci" / "run").read_text()


VOICE_MODULES = sorted(
    [*(ROOT / "notifier").rglob("calls.py"), ROOT / "notifier/rendering/spoken.py"]
)


@pytest.mark.parametrize("page", ["README.md", "docs/develop/adding-a-channel.md"])
def test_the_voice_channel_is_not_called_one_module_where_its_code_is_spread_wider(
    page: str,
) -> None:
    text = " ".join((ROOT / page).read_text().split())
    assert "Voice is one module" not in text
    assert "`notifier/channels/voice.py`" in text
    for module in VOICE_MODULES:
        where = module.relative_to(ROOT)
        named = f"`{where}`" in text or f"`{where.relative_to('notifier')}`" in text
        assert named, f"{page} does not name {where}, where voice code lives"
