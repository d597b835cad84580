"""What a non-editable install ships: every directory of modules is a package."""

from __future__ import annotations

from pathlib import Path

from setuptools import find_packages

SRC = Path(__file__).resolve().parent.parent / "src"


def test_every_module_directory_is_found_by_the_build() -> None:
    # pyproject uses setuptools' find: a directory without __init__.py would be left out
    # of the wheel, and the installed gateway would fail to import it.
    found = set(find_packages(str(SRC)))
    with_modules = {
        ".".join(path.parent.relative_to(SRC).parts)
        for path in SRC.rglob("*.py")
        if "__pycache__" not in path.parts
    }
    assert with_modules <= found, sorted(with_modules - found)
