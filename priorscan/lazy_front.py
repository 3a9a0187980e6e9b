"""Package fronts whose names are imported on first use, so that a command imports only what it uses.

A front (``imaging/__init__.py``, ``dedupe/__init__.py``) names what it offers once, as the imports of an
``if TYPE_CHECKING:`` block (which type checkers and readers see as plain imports), and ends with::

    __getattr__, __dir__ = lazy_front(__name__)

The first use of a name (``from imaging import apply_many``, ``imaging.apply_many``) imports the module that defines
it and keeps it on the package, so that importing one table module or one adapter (``priorscan backfill`` of DICOM
files, a worker process) no longer imports the whole package: its FHIR resources, charts, analytics and CDS Hooks
(about half a CPU-second of a command's start). What a front offers is unchanged (``__all__``); nothing runs at
import time in these modules that another module relies on (they define, they do not register).
"""

from __future__ import annotations

import ast
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _names(source: str) -> dict[str, tuple[str, str]]:
    """What the ``if TYPE_CHECKING:`` blocks of a front import: name -> (module, attribute)."""
    names: dict[str, tuple[str, str]] = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and statement.module and not statement.level:
                    for alias in statement.names:
                        names[alias.asname or alias.name] = (statement.module, alias.name)
    return names


def lazy_front(package: str) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module ``__getattr__`` and ``__dir__`` of the front of ``package`` (see the module docstring).

    Parameters
    ----------
    package : str
        The package's name (its ``__name__``); its ``__init__.py`` holds the ``if TYPE_CHECKING:`` imports.

    Returns
    -------
    tuple of callables
        ``__getattr__`` (raises AttributeError for a name the front does not offer, as a module does) and
        ``__dir__``.
    """
    front = sys.modules[package]
    names = _names(Path(str(front.__file__)).read_text(encoding="utf-8"))

    def __getattr__(name: str) -> Any:
        try:
            module_name, attribute = names[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        if module_name == package:  # ``from imaging import charts``: a submodule
            value = importlib.import_module(f"{package}.{attribute}")
        else:
            value = getattr(importlib.import_module(module_name), attribute)
        setattr(front, name, value)  # found once
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(front), *names})

    return __getattr__, __dir__


__all__ = ["lazy_front"]
