"""Answer types: how to read an answer of a given kind out of a piece of text.

Each answer type has a *strict* reading (the answer region is exactly an answer of that kind, as the prompt
asked) and a *lenient* one (the answer can be found in the region or, failing that, in an explicit
"the answer is …" phrase). lm-eval's GSM8K task reports "strict-match" and "flexible-extract" side by side
for the same reason: a model that knows the answer but ignores the format must be told apart from one that
is wrong.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Protocol

_MD = re.compile(r"[*_`]+")  # markdown emphasis that models wrap answers in


def _clean(s: str) -> str:
    return _MD.sub("", s).strip()


class AnswerType(Protocol):
    """What a grader needs from an answer type."""

    name: str

    def normalize_target(self, target: str) -> str: ...
    def strict(self, region: str) -> str | None: ...
    def lenient(self, region: str) -> str | None: ...
    def from_phrase(self, text: str) -> str | None: ...
    def equal(self, pred: str, target: str) -> bool: ...


_PHRASE = r"(?:final\s+answer|the\s+answer|answer|correct\s+(?:answer|option|choice))\s*(?:is|:)?\s*:?\s*"


@dataclass(frozen=True)
class YesNoMaybe:
    """PubMedQA's three-way answer. Strict: the region is exactly ``yes``/``no``/``maybe`` (any case,
    trailing punctuation allowed, e.g. "Yes."). Lenient: the region *starts* with one of them ("Yes, because
    …") or names exactly one of them as a word."""

    name: str = "yesno"
    labels: tuple[str, ...] = ("yes", "no", "maybe")

    def normalize_target(self, target: str) -> str:
        t = target.strip().lower()
        if t not in self.labels:
            raise ValueError(f"yes/no/maybe target expected, got {target!r}")
        return t

    def strict(self, region: str) -> str | None:
        t = _clean(region).lower().rstrip(".!")
        return t if t in self.labels else None

    def lenient(self, region: str) -> str | None:
        t = _clean(region).lower()
        m = re.match(r"^\W*(yes|no|maybe)\b", t)
        if m:
            return m.group(1)
        found = {w for w in re.findall(r"\b(yes|no|maybe)\b", t)}
        return found.pop() if len(found) == 1 else None

    def from_phrase(self, text: str) -> str | None:
        hits = re.findall(_PHRASE + r"(yes|no|maybe)\b", _clean(text), flags=re.IGNORECASE)
        return hits[-1].lower() if hits else None

    def equal(self, pred: str, target: str) -> bool:
        return pred == target


@dataclass(frozen=True)
class LetterChoice:
    """A multiple-choice letter. Strict: the region starts with the letter as a token — ``B``, ``(B)``,
    ``B)``, ``B.``, ``B: …``, ``B) text`` — and nothing else is a choice. Lenient: "the answer is (B)",
    "Option B", or a region in which exactly one valid letter stands alone."""

    letters: str = "ABCD"
    name: str = "choice"

    def normalize_target(self, target: str) -> str:
        m = re.match(rf"^\s*\(?([{self.letters}])\)?(?:[.):]\s*|\s+|$)", target)
        if not m:
            raise ValueError(
                f"answer letter {'/'.join(self.letters)} expected (optionally followed by the option text), "
                f"got {target!r}"
            )
        return m.group(1)

    def strict(self, region: str) -> str | None:
        m = re.fullmatch(rf"\(?([{self.letters}])\)?(?:[.):]\s*.*)?", _clean(region), flags=re.DOTALL)
        if m and "\n" not in _clean(region):
            return m.group(1)
        return None

    def lenient(self, region: str) -> str | None:
        t = _clean(region)
        # A leading letter counts when it is marked as a choice: "B", "B.", "B)", "(B) text", "Option B".
        # A bare leading capital followed by a word ("A patient …") is an article, not an answer.
        m = re.match(
            rf"^\s*(?:(?:option|choice)\s+\(?([{self.letters}])\)?(?![\w'])|\(([{self.letters}])\)|"
            rf"([{self.letters}])(?:[.):,]|$))",
            t,
            re.IGNORECASE,
        )
        if m:
            letter = next(g for g in m.groups() if g)
            if letter.isupper() or m.group(1) or len(t) <= 3:
                return letter.upper()
        phrased = self.from_phrase(t)
        if phrased:
            return phrased
        found = set(re.findall(rf"(?<![\w'])\(?([{self.letters}])\)?(?![\w'])", t))
        return found.pop() if len(found) == 1 else None

    def from_phrase(self, text: str) -> str | None:
        hits = re.findall(
            _PHRASE + rf"(?:option\s+|choice\s+)?\(?([{self.letters}])\)?(?![\w'])", _clean(text), re.IGNORECASE
        )
        return hits[-1] if hits else None

    def equal(self, pred: str, target: str) -> bool:
        return pred == target


_NUMBER = re.compile(r"-?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?")


def _to_decimal(s: str) -> Decimal | None:
    try:
        return Decimal(s.replace(",", "").replace("$", "").replace(" ", "").rstrip("."))
    except InvalidOperation:
        return None


def _canonical_number(s: str) -> str | None:
    d = _to_decimal(s)
    if d is None:
        return None
    d = d.normalize()
    return format(d.quantize(Decimal(1)) if d == d.to_integral_value() else d, "f")


@dataclass(frozen=True)
class Number:
    """A final number (GSM8K). Strict: the region is one number — commas as thousands separators, a leading
    ``$`` or a trailing ``%``/period allowed, nothing else. Lenient: the last number in the region
    (lm-eval's flexible-extract rule). ``18``, ``18.00``, ``$18`` and ``18.`` are the same answer."""

    name: str = "number"

    def normalize_target(self, target: str) -> str:
        t = target.split("####")[-1].strip()
        c = _canonical_number(t)
        if c is None:
            raise ValueError(f"numeric target expected (optionally after '####'), got {target!r}")
        return c

    def strict(self, region: str) -> str | None:
        t = _clean(region).rstrip(".").rstrip("%").strip()
        if _NUMBER.fullmatch(t):
            return _canonical_number(t)
        return None

    def lenient(self, region: str) -> str | None:
        hits = _NUMBER.findall(_clean(region))
        return _canonical_number(hits[-1]) if hits else None

    def from_phrase(self, text: str) -> str | None:
        hits = re.findall(_PHRASE + r"(" + _NUMBER.pattern + r")", _clean(text), re.IGNORECASE)
        if hits:
            return _canonical_number(hits[-1])
        m = re.findall(r"####\s*(" + _NUMBER.pattern + r")", text)
        return _canonical_number(m[-1]) if m else None

    def equal(self, pred: str, target: str) -> bool:
        a, b = _to_decimal(pred), _to_decimal(target)
        return a is not None and b is not None and a == b


@dataclass(frozen=True)
class FreeText:
    """A free-text clinical answer. There is nothing to extract beyond the answer region; agreement with the
    reference is decided by a judge (LLM or offline proxy), never by string equality."""

    name: str = "free"

    def normalize_target(self, target: str) -> str:
        return target.strip()

    def strict(self, region: str) -> str | None:
        return region.strip() or None

    def lenient(self, region: str) -> str | None:
        return region.strip() or None

    def from_phrase(self, text: str) -> str | None:
        return None

    def equal(self, pred: str, target: str) -> bool:  # pragma: no cover - judged, never compared
        raise TypeError("free-text answers are judged, not compared")


def answer_type(name: str, *, letters: str = "ABCD") -> AnswerType:
    """The answer type called ``name`` (``yesno``, ``choice``, ``number``, ``free``)."""
    types: dict[str, AnswerType] = {
        "yesno": YesNoMaybe(),
        "choice": LetterChoice(letters=letters),
        "number": Number(),
        "free": FreeText(),
    }
    if name not in types:
        import difflib

        close = difflib.get_close_matches(name, types, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown answer type {name!r}; known: {sorted(types)}.{hint}")
    return types[name]
