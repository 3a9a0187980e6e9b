"""Schemathesis over the OpenAPI schema, authenticated with a real admin token: no 5xx, every answer documented.

Bounded for CI (:data:`EXAMPLES` per operation); ``python -m bench fuzz`` runs the same checks longer.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import status_code_conformance

EXAMPLES = 6


@pytest.fixture(scope="module")
def fuzz_token(module_server) -> str:  # type: ignore[no-untyped-def]
    return module_server.token()  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def api_schema(module_server, fuzz_token: str):  # type: ignore[no-untyped-def]
    answer = httpx.get(module_server.base_url + "/openapi.json", headers={"Authorization": f"Bearer {fuzz_token}"})
    answer.raise_for_status()
    return schemathesis.openapi.from_dict(answer.json())


# STOW-RS bodies are DICOM in multipart/related, which schemathesis cannot generate: test_fuzz_inputs sends corrupt
# DICOM there instead
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex="^/dicomweb/")


@pytest.mark.timeout(600)  # one test with a subtest per operation: a few minutes on a loaded host
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
def test_no_server_error_and_every_answer_documented(case, module_server, fuzz_token: str) -> None:  # type: ignore[no-untyped-def]
    response = case.call(base_url=module_server.base_url, headers={"Authorization": f"Bearer {fuzz_token}"},
                         timeout=30, allow_redirects=False)
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance])
