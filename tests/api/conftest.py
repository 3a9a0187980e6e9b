"""Fixtures for the tests of api/: an opened app context, the CLI run in-process (factories: api_factories)."""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Callable, Iterator

import pytest

from api.context import AppContext
from priorscan.settings import Settings


@pytest.fixture
def context(sqlite_url: str) -> Iterator[AppContext]:
    """An opened app context on an empty SQLite store."""
    ctx = AppContext.open(Settings(db=sqlite_url, env="test"))
    yield ctx
    ctx.engine.dispose()


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[int, str, str]]:
    """Run ``priorscan ARGS`` in-process; returns (exit status, stdout, stderr). ``stdin`` feeds standard input."""
    import priorscan.cli
    from priorscan.cli import CliContext, main

    opened: list[CliContext] = []

    @dataclasses.dataclass
    class ClosingContext(CliContext):
        """Remembers each context so that its engine is disposed after the command (main() leaves it open)."""

        def __post_init__(self) -> None:
            opened.append(self)

    monkeypatch.setattr(priorscan.cli, "CliContext", ClosingContext)

    def run(*argv: str, stdin: str | None = None) -> tuple[int, str, str]:
        if stdin is not None:
            monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        capsys.readouterr()
        try:
            status = main(list(argv))
        finally:
            while opened:
                ctx = opened.pop()
                if "engine" in ctx.__dict__:
                    ctx.engine.dispose()
        out, err = capsys.readouterr()
        return status, out, err

    return run
