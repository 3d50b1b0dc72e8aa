"""Data flows one way: every package imports only packages upstream of it, read from the source with ast.

Imports inside functions count too: hiding one there does not change which way the code depends.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

import offsite

SOURCE = Path(offsite.__file__).parent

# Upstream first; a package may import only packages in earlier tiers. report draws what others compute, so
# each report module sits right above the packages it imports itself (see ``rank``).
TIERS = (
    ("errors",),
    ("paths",),
    ("models", "data"),
    ("similarity",),
    ("emulator",),
    ("evaluate",),
    ("train",),
    ("landscape",),
    ("experiment",),
    ("demo",),
    ("cli",),
)
PRESENTATION = "report"
TIER_OF = {package: tier for tier, packages in enumerate(TIERS) for package in packages}


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(module: str) -> str:
    return module.split(".")[1]


# The package's own __init__ (the public facade) and __main__ sit above everything and nothing imports them.
MODULES = {
    module_name(path): path
    for path in SOURCE.rglob("*.py")
    if path.parent != SOURCE or path.stem not in ("__init__", "__main__")
}


def imported_modules(module: str) -> set[str]:
    """The offsite modules that ``module`` imports, anywhere in its body."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            target = ".".join(base + (node.module.split(".") if node.module else []))
            submodules = {f"{target}.{alias.name}" for alias in node.names} & MODULES.keys()
            found.update(submodules or {target})
    return {name for name in found if name in MODULES}


@cache
def rank(module: str) -> float:
    """A pipeline module's tier; a report module ranks just above the highest tier it reaches."""
    if package_of(module) != PRESENTATION:
        return TIER_OF[package_of(module)]
    reached = [rank(name) for name in imported_modules(module) if name != module]
    return max(reached, default=-1) + 0.5


def upward_imports(package: str) -> list[str]:
    return sorted(
        f"{module} imports {name}"
        for module in MODULES
        if package_of(module) == package
        for name in imported_modules(module)
        if package_of(name) != package and rank(name) >= rank(module)
    )


def test_every_package_has_a_place():
    assert {package_of(module) for module in MODULES} - set(TIER_OF) - {PRESENTATION} == set()


def test_reading_imports_finds_known_edges():
    assert "offsite.emulator" in imported_modules("offsite.evaluate.targets")
    assert "offsite.emulator.adapter" in imported_modules("offsite.emulator.plugin")
    assert "offsite.report.similarity_plots" in imported_modules("offsite.similarity.analysis")
    assert rank("offsite.report.layer_map_plot") == TIER_OF["emulator"] + 0.5


@pytest.mark.parametrize("package", list(TIER_OF))
def test_imports_only_upstream(package):
    assert upward_imports(package) == []
