"""The layering of docs/architecture.md holds, and its check would catch each known way to break it.

The contracts live in ``pyproject.toml`` (``[tool.importlinter]``); ``make lint`` runs them too.
Each violation below is injected into a copy of the package, so the test proves the check fails
on the imports the architecture issue named (a door importing another door, a lower layer
importing a higher one, HTTP below the doors), not only that today's tree passes.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root,
        env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _copy_package(target: Path) -> None:
    """Copy the package's Python sources and the contracts (not the static assets)."""
    shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
    for source in (ROOT / "datasaas").rglob("*.py"):
        destination = target / source.relative_to(ROOT)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, destination)


def test_the_package_keeps_its_layers() -> None:
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


VIOLATIONS = [
    pytest.param("resolvers/events.py", "datasaas.tracking.routes", id="resolver-imports-a-door"),
    pytest.param("tracking/routes.py", "datasaas.rest_compat.models", id="door-imports-a-door"),
    pytest.param("schema/query.py", "datasaas.rest_compat.routes", id="graphql-imports-rest"),
    pytest.param("kit/deps.py", "datasaas.tracking.routes", id="kit-imports-a-door"),
    pytest.param("storage/goals.py", "datasaas.resolvers.goals", id="storage-imports-resolvers"),
    pytest.param("timerange.py", "datasaas.storage.models", id="pure-module-imports-storage"),
    pytest.param("resolvers/goals.py", "fastapi", id="resolver-imports-http"),
    pytest.param("storage/payments.py", "strawberry", id="storage-imports-graphql"),
]


@pytest.mark.parametrize(("module", "imported"), VIOLATIONS)
def test_each_kind_of_violation_breaks_the_check(
    tmp_path: Path, module: str, imported: str
) -> None:
    _copy_package(tmp_path)
    target = tmp_path / "datasaas" / module
    target.write_text(target.read_text() + f"\nimport {imported}  # injected violation\n")
    result = _lint(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout
    assert imported in result.stdout
