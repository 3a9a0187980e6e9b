"""The rule file: the packaged default loads and validates, errors name the place, the version is a content hash,
TOML works like YAML, and the rule set in force follows edits of ``settings.rules_file``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import yaml

from dedupe import active_rules, load_rules
from dedupe.rules import PACKAGED_RULES, parse_rules
from dedupe.vocabulary import rule_vocabulary
from priorscan.errors import ConfigurationError

VOCABULARY = rule_vocabulary()


def packaged() -> dict:  # type: ignore[type-arg]
    return yaml.safe_load(PACKAGED_RULES.read_text(encoding="utf-8"))


def write(path: Path, data: dict) -> Path:  # type: ignore[type-arg]
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_the_packaged_table_holds_reference_md() -> None:
    rules = load_rules(vocabulary=VOCABULARY)
    windows = {r.id: (r.warning_days, r.info_days) for r in rules.rules}
    assert windows == {
        "ct-angiography": (7, 90), "ct-head": (30, 90), "ct-body": (30, 90), "ct-spine-face-neck": (30, 90),
        "ct-limbs": (30, 90), "mr-any": (30, 90), "nm-pet-any": (30, 90), "xr-chest": (7, 30),
        "xr-spine-pelvis-skull": (30, 90), "xr-limbs": (14, 30), "us-any": (None, 30), "mg-breast": (None, 180),
        "fluoro-interventional": (None, None)}
    assert rules.exceptions.paediatric.age_under_years == 16
    assert {r.code for r in rules.override_reasons} >= {"clinical-change", "different-protocol", "prior-unavailable",
                                                         "prior-inadequate", "different-question"}
    assert rules.longest_window_days == 180


def test_the_version_is_a_hash_of_the_content_not_of_comments_or_layout(tmp_path: Path) -> None:
    data = packaged()
    same = write(tmp_path / "same.yaml", data)
    assert load_rules(same).version == load_rules().version
    data["rules"][1]["warning_days"] = 29
    changed = write(tmp_path / "changed.yaml", data)
    assert load_rules(changed).version != load_rules().version
    assert len(load_rules().version) == 16


def test_toml_reads_like_yaml(tmp_path: Path) -> None:
    import tomllib

    def toml(value: object) -> str:  # JSON strings, numbers and arrays are TOML too: enough for this data
        return json.dumps(value)

    data = packaged()
    lines = [f"name = {toml(data['name'])}", f"timezone = {toml(data['timezone'])}",
             f"ionising_modalities = {toml(data['ionising_modalities'])}"]
    for rule in data["rules"]:
        lines.append("[[rules]]")
        lines += [f"{k} = {toml(v)}" for k, v in rule.items()]
    for name, section in data["exceptions"].items():
        lines.append(f"[exceptions.{name}]")
        lines += [f"{k} = {toml(v)}" for k, v in section.items()]
    for reason in data["override_reasons"]:
        lines.append("[[override_reasons]]")
        lines += [f"{k} = {toml(v)}" for k, v in reason.items()]
    path = tmp_path / "rules.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    tomllib.loads(path.read_text())
    rules = load_rules(path, vocabulary=VOCABULARY)
    assert [r.id for r in rules.rules] == [r["id"] for r in data["rules"]]


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d["rules"][0].update(warning_days=100), "rules.0: Value error, info_days (90) is shorter than warning"),
    (lambda d: d["rules"][1].update(regions=["brain"]), "unknown region 'brain'"),
    (lambda d: d["rules"][1].update(modalities=["CAT"]), "unknown modality 'CAT'"),
    (lambda d: d["rules"][1].update(id="ct-angiography"), "rule ids must be unique: ct-angiography repeated"),
    (lambda d: d["rules"][1].update(warning_days=-1), "rules.1.warning_days: Input should be greater than"),
    (lambda d: d["rules"][1].update(colour="red"), "rules.1.colour: Extra inputs are not permitted"),
    (lambda d: d.pop("override_reasons"), "override_reasons: Field required"),
    (lambda d: d["negation"].update(before=[False]), "negation.before.0: Input should be a valid string"),
])
def test_invalid_files_are_refused_naming_the_place(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    data = packaged()
    edit(data)
    path = write(tmp_path / "rules.yaml", data)
    with pytest.raises(ConfigurationError) as caught:
        load_rules(path, vocabulary=VOCABULARY)
    assert str(path) in caught.value.message
    assert message in caught.value.message
    assert caught.value.code == "config.rules"


def test_unreadable_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read the rule file"):
        load_rules(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: [unclosed", encoding="utf-8")
    with pytest.raises(ConfigurationError, match="not valid YAML"):
        load_rules(bad)
    with pytest.raises(ConfigurationError, match="mapping at the top level"):
        parse_rules(["a list"], source="inline")


def test_the_rule_set_in_force_follows_edits_and_keeps_the_last_valid_one(tmp_path: Path,
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    import os

    data = packaged()
    path = write(tmp_path / "rules.yaml", data)
    first = active_rules(path)
    assert active_rules(path) is first  # cached while the file is unchanged
    data["rules"][1]["info_days"] = 120
    write(path, data)
    os.utime(path, ns=(1, 10**18))  # a different modification time, whatever the clock's resolution
    edited = active_rules(path)
    assert edited.version != first.version
    assert edited.rules[1].info_days == 120
    path.write_text("rules: [unclosed", encoding="utf-8")
    os.utime(path, ns=(1, 2 * 10**18))
    with caplog.at_level(logging.ERROR, logger="dedupe.config"):
        assert active_rules(path) is edited
    assert "stays in force" in caplog.text
    with pytest.raises(ConfigurationError):
        active_rules(tmp_path / "never-valid.yaml")


def test_without_a_rules_file_the_packaged_table_is_in_force() -> None:
    assert active_rules(None).version == load_rules().version
