"""The documentation: the README stays short and its links resolve, the site builds strictly,
and the command-line page lists every option of the one option table.

The site is built with mkdocs when it is installed (the ``docs`` extra, which the test extra
includes); without it those tests skip, unless MPSWARM_REQUIRE_DOCS is set (``.ci/run`` sets
it): there a missing mkdocs fails.
"""

from __future__ import annotations

import html
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from mpswarm.cli.options import OPTIONS

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
#: A Markdown link or image: ``[text](target)``.
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _need(module: str) -> None:
    """Skip without ``module``, or fail where MPSWARM_REQUIRE_DOCS says it must be there."""
    if importlib.util.find_spec(module) is not None:
        return
    if os.environ.get("MPSWARM_REQUIRE_DOCS"):
        pytest.fail(f"MPSWARM_REQUIRE_DOCS is set but {module} is not installed "
                    "(pip install -e '.[docs]')")  # fmt: skip
    pytest.skip(f"{module} is not installed")


def _relative_links(text: str) -> list[str]:
    return [link for link in LINK.findall(text) if not re.match(r"[a-z]+:|#", link)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documentation site, built with ``mkdocs build --strict`` (a broken link, a missing
    anchor or page, or a page left out of the navigation fails the build)."""
    _need("mkdocs")
    _need("material")
    out = tmp_path_factory.mktemp("site")
    # (the hook imports this checkout's mpswarm, whatever is installed)
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-4000:]
    return out


def _page_text(site: Path, page: str) -> str:
    """The built page of ``docs/<page>.md``, its markup removed."""
    built = (site / page / "index.html").read_text(encoding="utf-8")
    return html.unescape(re.sub(r"<[^>]+>", " ", built))


def test_readme_is_short() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move detail into docs/"


def test_readme_links_resolve() -> None:
    links = _relative_links(README.read_text(encoding="utf-8"))
    assert any(link.startswith("docs/") for link in links)
    missing = [link for link in links if not (ROOT / link.partition("#")[0]).exists()]
    assert not missing, f"README.md links to files that do not exist: {missing}"


def test_readme_has_the_ci_test_command() -> None:
    """Set-up command 2 is what ``.ci/run`` runs, word for word."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    command = next(line for line in ci.splitlines() if "pip install -e '.[test]'" in line)
    assert command.strip() in README.read_text(encoding="utf-8")


def test_readme_anchors_exist_in_the_site(site: Path) -> None:
    for link in _relative_links(README.read_text(encoding="utf-8")):
        path, _, anchor = link.partition("#")
        if not anchor or not path.startswith("docs/") or not path.endswith(".md"):
            continue
        page = path[len("docs/") : -len(".md")]
        built = (site / page / "index.html").read_text(encoding="utf-8")
        found = f'id="{anchor}"' in built
        assert found, f"README.md: {link} has no such heading"


def test_cli_page_lists_every_option(site: Path) -> None:
    text = _page_text(site, "cli")
    words = set(text.split())
    for option in OPTIONS:
        for flag in option.flags:
            assert flag in words, f"{flag} is missing from the command-line page"
        for variable in option.envvars:
            assert variable in words, f"{variable} ({option.long}) is missing"
        for key in option.config_keys:
            assert key in words, f"the file key {key} ({option.long}) is missing"
        if option.metavar is not None:  # (this checkout's table, not an installed one's)
            assert option.metavar in words, f"{option.long}'s value {option.metavar} is missing"
    for subcommand in ("serve", "compare", "replay", "capacity"):
        assert f"Usage: mpswarm {subcommand}" in text


def test_every_exit_code_is_documented(site: Path) -> None:
    text = _page_text(site, "outputs")
    table = text[text.index("Exit code") :]
    for code in ("0", "1", "2", "3", "4", "130, 143"):
        assert f" {code} " in table, f"exit code {code} is not in the table"


def test_kuberay_manifest_parses() -> None:
    _need("yaml")
    import yaml

    manifest = yaml.safe_load((ROOT / "examples" / "kuberay" / "raycluster.yaml").read_text())
    assert manifest["kind"] == "RayCluster"
    spec = manifest["spec"]
    head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
    workers = spec["workerGroupSpecs"][0]["template"]["spec"]["containers"][0]
    assert head["image"] == workers["image"]
