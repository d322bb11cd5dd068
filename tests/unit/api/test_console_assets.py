"""The console's assets ship inside the package: every file is covered by package-data, and the page loads no CDN."""

from __future__ import annotations

import re
import tomllib
from fnmatch import fnmatch
from pathlib import Path

from api.console.routes import STATIC_DIR

ROOT = Path(__file__).resolve().parents[3]


def _assets() -> list[str]:
    return sorted(str(p.relative_to(STATIC_DIR.parent)) for p in STATIC_DIR.rglob("*") if p.is_file())


def test_every_console_asset_is_declared_as_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["api.console"]

    missing = [a for a in _assets() if not any(fnmatch(a, p) and a.count("/") == p.count("/") for p in patterns)]

    assert _assets() and missing == [], f"add to [tool.setuptools.package-data] 'api.console': {missing}"


def test_the_console_loads_nothing_from_another_origin() -> None:
    remote = re.compile(r"""(src|href)\s*=\s*["']https?://|import\s[^;]*from\s*["']https?://|url\(\s*["']?https?://""")

    offenders = [a for a in _assets() if remote.search((STATIC_DIR.parent / a).read_text(encoding="utf-8"))]

    assert offenders == []


def test_every_module_the_page_imports_exists() -> None:
    scripts = STATIC_DIR / "js"
    for module in scripts.glob("*.js"):
        text = module.read_text(encoding="utf-8")
        # Static and lazy (`import("./x.js")`) imports, relative or under /ui/static/ (the vendor bundle).
        for imported in re.findall(r"""(?:from\s+|import\()["'](\./[\w-]+\.js|/ui/static/[\w/.-]+\.js)["']""", text):
            path = scripts / imported[2:] if imported.startswith("./") else STATIC_DIR / imported[len("/ui/static/") :]
            assert path.is_file(), f"{module.name} imports a missing {imported}"
