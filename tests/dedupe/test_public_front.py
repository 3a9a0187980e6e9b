"""The public front of dedupe: every exported name exists, and the adapters other engineers call have the agreed
signatures."""

from __future__ import annotations

import inspect

import dedupe


def test_every_exported_name_exists() -> None:
    assert dedupe.__all__ == sorted(dedupe.__all__, key=lambda n: (not n.isupper(), n))
    missing = [name for name in dedupe.__all__ if not hasattr(dedupe, name)]
    assert missing == []


def test_the_adapters_called_by_the_feeds_have_the_agreed_signatures() -> None:
    from dedupe.hl7_orders import apply_order

    assert list(inspect.signature(apply_order).parameters)[:3] == ["session", "trusts", "message"]  # message: read
    assert "agent" in inspect.signature(apply_order).parameters
    assert list(inspect.signature(dedupe.apply_service_request).parameters)[:3] == ["session", "trusts", "resource"]
