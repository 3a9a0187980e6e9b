"""The dose avoided: the prior's own effective dose when known, else the rule file's typical dose."""

from __future__ import annotations

import pytest
from dedupe_factories import RULES

from dedupe import dose_avoided


@pytest.mark.parametrize(("request_", "priors", "expected", "basis", "why"), [
    ({"modality": "CT", "bodySite": "head"}, [{"effectiveDoseMsv": 1.7, "studyInstanceUid": "1.2"}], 1.7, "prior 1.2",
     "the comparable prior's own dose"),
    ({"modality": "CT", "bodySite": "head"}, [{"effectiveDoseMsv": None}], 1.5, "typical",
     "unknown prior dose: typical CT head (DRL DLP × k)"),
    ({"modality": "CT", "bodySite": "pulmonary-angiography"}, [], 4.5, "typical", "a region-specific row"),
    ({"modality": "CT", "bodySite": "lumbar-spine"}, [], 5.0, "typical", "no row for the region: CT any"),
    ({"modality": "MR", "bodySite": "knee"}, [], 0.0, "typical", "MR: no ionising dose"),
    ({"modality": None, "bodySite": "knee"}, [], None, None, "nothing known"),
    ({"modality": "CT", "bodySite": "head", "paediatric": True}, [{"effectiveDoseMsv": None}], None, "not estimated",
     "a child: the typical doses are an adult's"),
    ({"modality": "CT", "bodySite": "head", "paediatric": True}, [{"effectiveDoseMsv": 1.6, "studyInstanceUid": "3"}],
     1.6, "prior 3", "a child's prior carries its own (paediatric) estimate"),
])
def test_dose_avoided(request_, priors, expected, basis, why) -> None:  # type: ignore[no-untyped-def]
    avoided = dose_avoided(RULES, request_, priors)
    assert avoided.effective_dose_msv == expected, why
    assert (avoided.basis or "").startswith(basis or ""), why
