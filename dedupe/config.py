"""The rule set in force: ``settings.rules_file`` (or the packaged default), validated against the imaging
vocabulary, cached per process and re-read when the file changes.

A clinical lead's edit takes effect at the next check, with no restart. If an edited file does not validate, the
error is logged (it names the file and the place, never patient data) and the last valid rule set stays in force;
its version goes on every alert, so which table judged which request stays traceable. A file that is invalid when
first read is an error: the service does not run without a valid table.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from dedupe.rules import PACKAGED_RULES, RuleSet, load_rules
from dedupe.vocabulary import rule_vocabulary
from priorscan.errors import ConfigurationError

log = logging.getLogger(__name__)

_lock = threading.Lock()
_cache: dict[Path, tuple[tuple[int, int], RuleSet]] = {}


def _stamp(path: Path) -> tuple[int, int]:
    try:
        stat = os.stat(path)
    except OSError:
        return (-1, -1)  # unreadable: load_rules says why, or the last valid rule set stays in force
    return stat.st_mtime_ns, stat.st_size


def active_rules(rules_file: Path | None = None) -> RuleSet:
    """The validated rule set of ``rules_file`` (the packaged default when None), re-read after each change.

    Raises
    ------
    ConfigurationError
        ``config.rules`` when the file cannot be read or is invalid and no earlier valid version is cached.
    """
    path = Path(rules_file) if rules_file is not None else PACKAGED_RULES
    stamp = _stamp(path)
    cached = _cache.get(path)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    with _lock:
        cached = _cache.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        try:
            rules = load_rules(path, vocabulary=rule_vocabulary())
        except ConfigurationError as exc:
            if cached is None:
                raise
            log.error("the edited rule file is invalid; rule set %s stays in force: %s", cached[1].version, exc.message)
            _cache[path] = (stamp, cached[1])
            return cached[1]
        if cached is not None and cached[1].version != rules.version:
            log.info("rule set %s replaces %s (%s)", rules.version, cached[1].version, path)
        _cache[path] = (stamp, rules)
        return rules
