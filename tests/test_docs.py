"""The documentation: the site builds strictly, and the command-line page lists every option
of the one option table.

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


def _need(module: str) -> None:
    """Skip without ``module``, or fail where MPSWARM_REQUIRE_DOCS says it must be there."""
    if importlib.util.find_spec(module) is not None:
        return
    if os.environ.get("MPSWARM_REQUIRE_DOCS"):
        pytest.fail(f"MPSWARM_REQUIRE_DOCS is set but {module} is not installed "
                    "(pip install -e '.[docs]')")  # fmt: skip
    pytest.skip(f"{module} is not installed")


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
