"""Production serves only with a configured public address: SMART and CDS audiences never follow the Host header."""

from __future__ import annotations

import pytest

from api.context import AppContext
from api.http.app import create_app
from priorscan.errors import ConfigurationError
from priorscan.settings import Settings

SECRET = "a-production-secret-of-some-length-0123456789"


def test_production_refuses_to_serve_without_a_public_base_url(sqlite_url: str) -> None:
    context = AppContext.open(Settings(db=sqlite_url, env="production", secret_key=SECRET))
    try:
        with pytest.raises(ConfigurationError, match="PRIORSCAN_PUBLIC_BASE_URL"):
            create_app(context)
    finally:
        context.engine.dispose()


def test_production_serves_with_a_public_base_url(sqlite_url: str) -> None:
    context = AppContext.open(Settings(db=sqlite_url, env="production", secret_key=SECRET,
                                       public_base_url="https://priorscan.example.nhs.uk"))
    try:
        assert create_app(context).title == "priorscan"
    finally:
        context.engine.dispose()


def test_the_smart_audience_ignores_the_host_header(live_server_with) -> None:  # type: ignore[no-untyped-def]
    import httpx

    server = live_server_with(public_base_url="https://priorscan.example.nhs.uk")
    config = httpx.get(server.base_url + "/.well-known/smart-configuration", headers={"Host": "evil.example"})
    assert config.json()["token_endpoint"] == "https://priorscan.example.nhs.uk/oauth2/token"
