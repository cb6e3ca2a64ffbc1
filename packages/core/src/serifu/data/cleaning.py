"""Cleaning rules. Preset ``report`` is the report's recipe exactly:

remove the string ``gaiji``, the character ``@`` and whitespace (half- and full-width);
drop every line containing ``//``; append ``"\\n"``. Optional rules: NFKC, bracketed
directions, min/max length, de-duplication. Every rule counts what it changed or
dropped and keeps a few examples.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

PRESETS = ("report", "none")
EXAMPLES_KEPT = 3
_WHITESPACE = re.compile(r"\s+")  # str regexes include the full-width space U+3000
_DIRECTIONS = re.compile(r"（[^（）]*）|\([^()]*\)")


@dataclass(frozen=True)
class Rule:
    """A text transform (returns the new text) or a filter (returns None to drop)."""

    id: str
    description: str
    fn: Callable[[str], str | None]
    final: bool = False
    """Applied only to whole training lines (``append_newline``), not to dialogue fields."""


@dataclass
class RuleReport:
    """How many texts a rule changed or dropped, with a few before/after examples."""

    changed: int = 0
    dropped: int = 0
    examples: list[dict[str, str | None]] = field(default_factory=list)

    def to_dict(self, description: str) -> dict[str, Any]:
        return {
            "description": description,
            "changed": self.changed,
            "dropped": self.dropped,
            "examples": self.examples,
        }


def remove_string(s: str, rule_id: str) -> Rule:
    return Rule(rule_id, f"remove the string {s!r}", lambda t: t.replace(s, ""))


def _remove_directions(text: str) -> str:
    prev = None
    while prev != text:
        prev, text = text, _DIRECTIONS.sub("", text)
    return text


REMOVE_GAIJI = remove_string("gaiji", "remove_gaiji")
REMOVE_AT = remove_string("@", "remove_at")
REMOVE_WHITESPACE = Rule(
    "remove_whitespace",
    "remove whitespace (half- and full-width)",
    lambda t: _WHITESPACE.sub("", t),
)
DROP_COMMENTS = Rule(
    "drop_double_slash", "drop lines containing '//'", lambda t: None if "//" in t else t
)
APPEND_NEWLINE = Rule(
    "append_newline", "append '\\n' to every line", lambda t: t + "\n", final=True
)
NFKC = Rule("nfkc", "Unicode NFKC normalisation", lambda t: unicodedata.normalize("NFKC", t))
DROP_DIRECTIONS = Rule(
    "drop_directions", "remove bracketed directions （…） and (…)", _remove_directions
)

REPORT_RULES: tuple[Rule, ...] = (
    REMOVE_GAIJI,
    REMOVE_AT,
    REMOVE_WHITESPACE,
    DROP_COMMENTS,
    APPEND_NEWLINE,
)


def min_chars_rule(n: int) -> Rule:
    return Rule(
        "min_chars", f"drop lines shorter than {n} characters", lambda t: t if len(t) >= n else None
    )


def max_chars_rule(n: int) -> Rule:
    return Rule(
        "max_chars", f"drop lines longer than {n} characters", lambda t: t if len(t) <= n else None
    )


DEDUPE_ID = "dedupe"


@dataclass
class CleanResult:
    """Kept texts with the index of each in the input, and the per-rule reports."""

    kept: list[int]
    texts: list[str]
    rules: dict[str, dict[str, Any]]


class Cleaner:
    """An ordered list of rules; ``dedupe`` (if on) runs after the others, before ``final`` ones."""

    def __init__(self, rules: Sequence[Rule], *, dedupe: bool = False) -> None:
        self.rules = list(rules)
        self.dedupe = dedupe

    @classmethod
    def build(
        cls,
        preset: str = "report",
        *,
        nfkc: bool = False,
        drop_directions: bool = False,
        min_chars: int | None = None,
        max_chars: int | None = None,
        dedupe: bool = False,
    ) -> Cleaner:
        """The preset's rules plus the optional ones, in a fixed order."""
        from serifu.errors import SerifuError

        if preset not in PRESETS:
            raise SerifuError(f"unknown cleaning preset {preset!r}; known: {', '.join(PRESETS)}")
        rules: list[Rule] = []
        if nfkc:
            rules.append(NFKC)
        if drop_directions:
            rules.append(DROP_DIRECTIONS)
        base = list(REPORT_RULES) if preset == "report" else []
        rules.extend(r for r in base if not r.final)
        if min_chars is not None:
            rules.append(min_chars_rule(min_chars))
        if max_chars is not None:
            rules.append(max_chars_rule(max_chars))
        rules.extend(r for r in base if r.final)
        return cls(rules, dedupe=dedupe)

    def clean_one(self, text: str, *, final: bool = True) -> str | None:
        """Clean one text without reporting (dedupe does not apply)."""
        current: str | None = text
        for rule in self.rules:
            if current is None:
                return None
            if rule.final and not final:
                continue
            current = rule.fn(current)
        return current

    def run(self, texts: Sequence[str], *, final: bool = True) -> CleanResult:
        """Clean ``texts``, counting per rule; ``final=False`` skips ``append_newline``."""
        reports = {r.id: RuleReport() for r in self.rules if final or not r.final}
        if self.dedupe:
            reports[DEDUPE_ID] = RuleReport()
        plain = [r for r in self.rules if not r.final]
        finals = [r for r in self.rules if r.final] if final else []
        seen: set[str] = set()
        kept: list[int] = []
        out: list[str] = []
        for i, text in enumerate(texts):
            current: str | None = text
            for rule in plain:
                assert current is not None
                current = self._apply(rule.fn, current, reports[rule.id])
                if current is None:
                    break
            if current is not None and self.dedupe:
                key = current
                current = self._apply(lambda t: None if t in seen else t, key, reports[DEDUPE_ID])
                seen.add(key)
            if current is None:
                continue
            for rule in finals:
                current = self._apply(rule.fn, current, reports[rule.id])
                assert current is not None
            kept.append(i)
            out.append(current)
        descriptions = {r.id: r.description for r in self.rules}
        descriptions[DEDUPE_ID] = "drop exact duplicates (after the rules above)"
        return CleanResult(kept, out, {k: v.to_dict(descriptions[k]) for k, v in reports.items()})

    @staticmethod
    def _apply(fn: Callable[[str], str | None], text: str, report: RuleReport) -> str | None:
        result = fn(text)
        if result is None:
            report.dropped += 1
        elif result != text:
            report.changed += 1
        else:
            return result
        if len(report.examples) < EXAMPLES_KEPT:
            report.examples.append({"before": text, "after": result})
        return result
