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
    ``B)``, ``B.``, ``B: …``, ``B) text`` — on one line, and nothing else is a choice. Lenient: the region
    starts with a marked letter ("B.", "(B) …", "Option B", a short "b"), or says "the answer is (B)", or holds
    exactly one valid letter standing alone. An article is not an answer: "A patient …" does not read as A,
    nor "the answer is a bit unclear" as a. A letter outside ``letters`` ("E" for a 4-option question) is
    no answer (unparseable), and two different letters ("B and C") are no answer either."""

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
        found = {
            m.group(2)
            for m in re.finditer(rf"(?<![\w'])(\()?([{self.letters}])\)?(?![\w'])", t)
            # "A" before a lowercase word is the article ("… because A patient …"), unless it is "(A)".
            if not (m.group(2) == "A" and not m.group(1) and re.match(r"\s+[a-z]", t[m.end() :]))
        }
        return found.pop() if len(found) == 1 else None

    def from_phrase(self, text: str) -> str | None:
        # "The answer is B", "answer: (b)", "the correct option is C." -- a lowercase letter only when it
        # stands alone ("(b)", "b." or at the end): in "the answer is a bit unclear", "a" is the article.
        letter = (
            rf"(?:\(([{self.letters}])\)|(?-i:([{self.letters}]))(?![\w'])|"
            rf"([{self.letters.lower()}])(?=\s*(?:[.):,;!]|$)))"
        )
        hits = re.findall(_PHRASE + r"(?:option\s+|choice\s+)?" + letter, _clean(text), re.IGNORECASE)
        return next(g for g in hits[-1] if g).upper() if hits else None

    def equal(self, pred: str, target: str) -> bool:
        return pred == target


#: Exactly one number as the prompt asks for it: thousands separators only in groups of three.
_STRICT_NUMBER = re.compile(r"-?\$?\s?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)")
#: Any number in running text. A comma between digits is a thousands separator however the digits are grouped
#: ("1,2345" is 12345, as in lm-eval's GSM8K filters, never "5"); a minus sign counts only where it cannot be a
#: hyphen or a range ("10-15" holds 10 and 15, not -15); ".5" is 0.5; the parts of a fraction are not numbers.
_ANY_NUMBER = re.compile(
    r"(?<![\d.,/])(?<!/\s)"  # not the tail of a longer number, nor a denominator ("3/4" is not 4)
    r"(?:(?<![\w.])-)?\$?\s?(?:\d+(?:,\d+)*(?:\.\d+)?|\.\d+)"
    r"(?!\d|[.,]\d|\s*/\s*\d)"  # taken whole, and not a numerator ("3/4" is not 3)
)


def _to_decimal(s: str) -> Decimal | None:
    try:
        d = Decimal(s.replace(",", "").replace("$", "").replace(" ", "").rstrip("."))
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def _canonical_number(s: str) -> str | None:
    """The shortest exact decimal spelling (``18.00`` -> ``18``). String formatting, not ``quantize``: a
    100k-digit "number" must not overflow the decimal context and crash a grader."""
    d = _to_decimal(s)
    if d is None:
        return None
    t = format(d, "f")
    if "." in t:
        t = t.rstrip("0").rstrip(".")
    return "0" if t in ("-0", "") else t


@dataclass(frozen=True)
class Number:
    """A final number (GSM8K). Strict: the region is one number — commas as thousands separators, a leading
    ``$`` or a trailing ``%``/period allowed, nothing else. Lenient: an explicit "the answer is N" inside the
    region wins ("The answer is 18, not 20" is 18); otherwise the last number in the region (lm-eval's
    flexible-extract rule), so units and words around it do not matter ("18 mg", "$18.00"). ``18``,
    ``18.00``, ``$18`` and ``18.`` are the same answer (exact decimal comparison). A fraction is not read at
    all ("3/4" is neither 3 nor 4; "ate 3/4, so 6 remain" reads 6); scientific notation is not understood
    ("1e3" reads as 3): GSM8K answers are plain numbers."""

    name: str = "number"

    def normalize_target(self, target: str) -> str:
        t = target.split("####")[-1].strip()
        c = _canonical_number(t)
        if c is None:
            raise ValueError(f"numeric target expected (optionally after '####'), got {target!r}")
        return c

    def strict(self, region: str) -> str | None:
        t = _clean(region).rstrip(".").rstrip("%").strip()
        if _STRICT_NUMBER.fullmatch(t):
            return _canonical_number(t)
        return None

    def lenient(self, region: str) -> str | None:
        t = _clean(region)
        phrased = self.from_phrase(t)
        if phrased is not None:
            return phrased
        hits = _ANY_NUMBER.findall(t)
        return _canonical_number(hits[-1]) if hits else None

    def from_phrase(self, text: str) -> str | None:
        hits = re.findall(_PHRASE + r"(" + _ANY_NUMBER.pattern + r")", _clean(text), re.IGNORECASE)
        if hits:
            return _canonical_number(hits[-1])
        m = re.findall(r"####\s*(" + _ANY_NUMBER.pattern + r")", text)
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
