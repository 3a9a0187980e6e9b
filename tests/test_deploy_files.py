"""The deployment files in ``deploy/`` say what docs/operations.md says of them (no Docker engine runs here, so the
image itself is built by the trusts' pipelines; these checks keep the definitions honest)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _stages(dockerfile: str) -> list[str]:
    return re.split(r"^FROM ", dockerfile, flags=re.MULTILINE)[1:]


def test_the_image_is_multi_stage_non_root_and_without_build_tools() -> None:
    stages = _stages((ROOT / "deploy" / "Dockerfile").read_text())
    assert len(stages) >= 2
    final = stages[-1]
    assert re.search(r"^USER (?!root\b|0\b)\S+", final, flags=re.MULTILINE), "the final stage runs as root"
    for tool in ("build-essential", "gcc", "g++", "make "):
        assert tool not in final, f"{tool} in the final stage"
    assert "COPY --from=build /opt/priorscan /opt/priorscan" in final
    assert "PRIORSCAN_ENV=production" in final and "/readyz" in final
    assert "-c constraints.txt" in stages[0]  # installs what CI tested


def test_the_image_copies_every_package_the_project_ships() -> None:
    import tomllib

    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]["include"]
    for pattern in packages:
        name = pattern.rstrip("*")
        assert f"COPY {name} ./{name}" in dockerfile, f"the image lacks package {name}"


def test_the_systemd_unit_runs_unprivileged_and_checks_the_schema_first() -> None:
    unit = (ROOT / "deploy" / "priorscan.service").read_text()
    sections = dict(re.findall(r"^\[(\w+)\]\n(.*?)(?=^\[|\Z)", unit, flags=re.MULTILINE | re.DOTALL))
    service = sections["Service"]
    assert re.search(r"^User=priorscan$", service, flags=re.MULTILINE)
    assert "ExecStartPre=/opt/priorscan/bin/priorscan migrate --check" in service
    assert re.search(r"^ExecStart=/opt/priorscan/bin/priorscan serve ", service, flags=re.MULTILINE)
    assert "EnvironmentFile=" in service and "NoNewPrivileges=yes" in service
    assert "WantedBy=multi-user.target" in sections["Install"]
