"""Answer types: which options a piece of text names, for one kind of answer.

Every reading comes back as a :class:`Reading` — the distinct options the text *names as its answer*, in
order — and the rule is the same for every type: **one option named is the answer, none is no answer, two or
more is no answer either** (a hedge, an echoed option list, disagreeing answer blocks). The grader, the
benchmark's accuracy and the GRPO rewards all take that one decision, so a hedge earns nothing anywhere.

What "naming" means depends on the type, because ordinary words overlap the options ("no evidence", "vitamin
D", "5 apples and 7 pears"):

* **yes / no / maybe** — a label is named when it is the text's first word ("No, the trial …"), when it is
  followed by the end, punctuation, a conjunction (or/and/nor/vs) or another label ("yes or no", "Yes."), or
  when it follows an alternative (or/nor/vs/either, ``/``): "It could be yes or no depending …". A label used
  as an ordinary word ("there was no rebound") is not named.
* **letters** — a letter is named when it is written as an option: the text's first token ("B", "(B)",
  "B. Aspirin", "b"), a label anywhere ("(C)", or "C." / "C)" / "C:" before more text, as in an echoed option
  list), after "option"/"choice" or an answer phrase ("the answer is B"), or joined to a named letter by
  or/and/but/nor/vs, a comma, slash or dash ("B or C", "A-D", "A, B", "B, but C …"). Only when nothing is
  named that way do bare capitals count ("I would choose B"). A letter inside a name ("Hepatitis C",
  "Vitamin D deficiency") is therefore no competing answer once a letter is labelled, and "A" before a
  lowercase word is the article ("A patient …", "(A is wrong)").
* **numbers** — arithmetic is read as what it comes to ("2000 - 200 = 1800" is 1800; an expression with no
  result, "10-15" or "3/4", is no number); the answer is the number after an answer phrase, else the last
  number (lm-eval's flexible-extract rule); a number joined to it by or/to/and/nor/vs or a comma ("1800 or
  1900", "10 to 15") is named too.

Everywhere, an option right after "not" is rejected rather than named ("Yes (not no)", "B, not C", "18, not
20"), and text is read leniently about case, whitespace, punctuation, Unicode compatibility forms and markdown
emphasis ("**Yes.**", "Ｂ"). Which text is read — the layout's answer region, or the rest of the completion for
the flexible reading — is the grader's business (:mod:`medbench.tasks.graders.grade`); each type's
:meth:`find` says where in free-standing text an answer is *committed* (answer phrases, the last line, …).
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Protocol

#: The answer letters of a multiple-choice question when its document does not say (4 options; MedQA's
#: 5-option documents carry "ABCDE"): the one default for prompts, loaders, graders and rewards.
DEFAULT_LETTERS = "ABCD"


@dataclass(frozen=True)
class Reading:
    """What a text says as an answer: the distinct options it names, in order of first mention.

    ``problem`` says why there is no answer when nothing usable is named (shown in the record's notes).
    """

    named: tuple[str, ...] = ()
    problem: str | None = None
    #: Options the text explicitly rejects ("not yes", "the answer is not 'yes' or 'no'").
    rejected: tuple[str, ...] = ()

    @property
    def answer(self) -> str | None:
        """The answer when exactly one option is named, else ``None``."""
        return self.named[0] if len(self.named) == 1 else None

    @property
    def ambiguous(self) -> bool:
        return len(self.named) > 1

    def why_none(self) -> str:
        """The note for a reading that gave no answer."""
        if self.ambiguous:
            names = and_list([v if len(v) <= 40 else v[:39] + "…" for v in self.named])
            return f"ambiguous: {self.problem + ' that ' if self.problem else ''}names {names}"
        return self.problem or "no answer"


NOTHING = Reading()


def and_list(items: tuple[str, ...] | list[str]) -> str:
    """``a and b`` / ``a, b, c and d``."""
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _distinct(values) -> tuple[str, ...]:
    return tuple(dict.fromkeys(v for v in values if v is not None))


def merge(readings: list[Reading]) -> Reading:
    """Several readings of one answer (answer blocks, phrase lines): every option any of them names."""
    named = _distinct(v for r in readings for v in r.named)
    # the problem kept is one that goes with what was named (an expression that names numbers), if any
    problems = [r.problem for r in readings if r.problem and (r.named or not named)]
    return Reading(named, problems[-1] if problems else None,
                   _distinct(v for r in readings for v in r.rejected))


class AnswerType(Protocol):
    """What a grader needs from an answer type."""

    name: str

    def normalize_target(self, target: str) -> str: ...
    def strict(self, region: str) -> str | None: ...
    def read(self, text: str) -> Reading: ...
    def find(self, text: str, *, cut: bool) -> Reading: ...
    def equal(self, pred: str, target: str) -> bool: ...


# -- shared text handling ---------------------------------------------------------------------------------------

_MD = re.compile(r"[*_`]+")  # markdown emphasis that models wrap answers in
_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))


def normalize(text: str) -> str:
    """Compatibility forms folded (fullwidth letters, non-breaking spaces), zero-width characters and
    markdown emphasis removed. Lengths change: only readings use it, never spans."""
    return _MD.sub("", unicodedata.normalize("NFKC", text).translate(_ZERO_WIDTH))


#: An explicit answer phrase: "The answer is", "Answer:", "the correct option is", "final answer =", "The answer
#: to the question "…?" is".
_PHRASE = re.compile(
    r"\b(?:(?:final|correct|right|best)\s+)?(?:answer|option|choice)"
    r"(?:\s+to\s+(?:the|this|your)\s+question(?:\s*[\"“][^\"”\n]*[\"”])?)?"
    r"\s*(?:is|was|would\s+be|will\s+be|:|=)[\s\"'“”‘’:(\[]*",
    re.IGNORECASE,
)
#: Words, numbers and single symbols, with their positions.
_WORDS = re.compile(r"[^\W_]+(?:['’][^\W_]+)*|[^\s\w]")
_ALTERNATIVE = {"or", "nor", "vs", "versus", "either"}
_CONJUNCTION = _ALTERNATIVE | {"and", "but"}
#: Words that join two options into one hedge ("B or maybe C", "18 or even 20").
_JOINERS = _CONJUNCTION | {"even", "maybe", "perhaps", "possibly", "also", "else", "to", "through"}
#: What a negation reaches through: "not 'yes' or 'no'", "not B or C".
_NEGATED_LIST = {"or", "nor", "either"}
_LETTER_SEPARATORS = {",", "/", "-", "–", "&", "|", "(", ")", "[", "]", ";", "option", "choice"}


def _phrase_ends(text: str) -> set[int]:
    return {m.end() for m in _PHRASE.finditer(text)}


def phrase_lines(text: str) -> list[str]:
    """Each answer phrase with the rest of its line ("the answer is B or C." → "answer is B or C."), or with
    the next line when the rest is blank ("The answer is:\nNo."), never reaching into the next phrase."""
    out = []
    matches = list(_PHRASE.finditer(text))
    for k, m in enumerate(matches):
        stop = matches[k + 1].start() if k + 1 < len(matches) else len(text)
        end = text.find("\n", m.end(), stop)
        if end >= 0 and not text[m.end() : end].strip():
            nxt = text.find("\n", end + 1, stop)
            end = nxt if nxt >= 0 else -1
        out.append(text[m.start() : end if end >= 0 else stop])
    return out


def last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def phrase_reading(kind: AnswerType, text: str) -> Reading:
    """What free-standing text's answer phrases say, each read with the rest of its line: the options they
    name (``named``) or explicitly reject (``rejected``)."""
    return merge([kind.read(line) for line in phrase_lines(normalize(text).replace("####", " answer: "))])


# -- yes / no / maybe -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class YesNoMaybe:
    """PubMedQA's three-way answer. Strict: the region is exactly ``yes``/``no``/``maybe`` (any case, a
    trailing full stop or exclamation mark allowed, e.g. "Yes."). Read: the labels the text names (see the
    module docstring): "Yes, because …" is yes, "yes or no" is ambiguous, "there is no evidence" names
    nothing."""

    name: str = "yesno"
    labels: tuple[str, ...] = ("yes", "no", "maybe")

    def normalize_target(self, target: str) -> str:
        t = target.strip().lower()
        if t not in self.labels:
            raise ValueError(f"yes/no/maybe target expected, got {target!r}")
        return t

    def strict(self, region: str) -> str | None:
        t = normalize(region).strip().lower().rstrip(".!").strip()
        return t if t in self.labels else None

    def read(self, text: str) -> Reading:
        t = normalize(text).lower()
        tokens = [(m.group(), m.start()) for m in _WORDS.finditer(t)]
        after_phrase = _phrase_ends(t)
        first_word = next((i for i, (w, _) in enumerate(tokens) if w[0].isalnum()), None)
        named, rejected = [], []
        negating = False  # after "not", through a list it heads ("not 'yes' or 'no'")
        for i, (w, pos) in enumerate(tokens):
            if w not in self.labels:
                negating = w == "not" or (negating and (w in _NEGATED_LIST or not w[0].isalnum()))
                continue
            if negating:
                rejected.append(w)  # "not yes", "Yes (not no)": rejected, not named
                continue
            prev = tokens[i - 1][0] if i else ""
            nxt = tokens[i + 1][0] if i + 1 < len(tokens) else ""
            if (i == first_word or pos in after_phrase or not nxt or not nxt[0].isalnum()
                    or nxt in _CONJUNCTION or nxt in self.labels or prev in _ALTERNATIVE or prev in ("/", "|")):
                named.append(w)
        return Reading(_distinct(named), None if named else "no yes/no/maybe named", _distinct(rejected))

    def find(self, text: str, *, cut: bool) -> Reading:
        """Answer phrases; failing those, the reply's opening word ("No, anorectal endosonography is not …")
        and its last line when that is exactly a label — two different answers there are ambiguous. A phrase
        that rejects the options ("The answer is not 'yes' or 'no'") commits to none of them."""
        committed = phrase_reading(self, text)
        if committed.named or committed.rejected:
            return committed
        t = normalize(text).strip()
        first = re.match(r"[^\w]*(\w+)", t)
        opening = NOTHING
        if first and first.group(1).lower() in self.labels:
            opening = self.read(re.split(r"[.!?\n]", t, maxsplit=1)[0])
        tail = Reading((v,)) if not cut and (v := self.strict(last_line(text))) else NOTHING
        return merge([opening, tail])

    def equal(self, pred: str, target: str) -> bool:
        return pred == target


# -- letters --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LetterChoice:
    """A multiple-choice letter. Strict: the region starts with the letter as a token — ``B``, ``(B)``,
    ``B)``, ``B.``, ``B: …``, ``B) text`` — on one line. Read: the letters the text names as options (see the
    module docstring). A letter outside ``letters`` ("E" for a 4-option question) is no answer."""

    letters: str = DEFAULT_LETTERS
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
        t = normalize(region).strip()
        m = re.fullmatch(rf"\(?([{self.letters}])\)?(?:[.):]\s*.*)?", t, flags=re.DOTALL)
        return m.group(1) if m and "\n" not in t else None

    def _bare(self, line: str) -> str | None:
        """A line that is exactly a letter: "B", "(B)", "B.", "B)" — no option text."""
        m = re.fullmatch(rf"[(\[]?([{self.letters}])[)\].:]?", normalize(line).strip(), flags=re.IGNORECASE)
        return m.group(1).upper() if m else None

    def read(self, text: str) -> Reading:
        t = normalize(text)
        tokens = [(m.group(), m.start()) for m in _WORDS.finditer(t)]
        after_phrase = _phrase_ends(t)
        first_word = next((i for i, (w, _) in enumerate(tokens) if w[0].isalnum()), None)
        named: list[str] = []
        bare: list[str] = []
        # Letters joined only by conjunctions and separators ("A or (B)", "A-D", "B, but C") form a group; a
        # group with one named letter names them all.
        group: list[tuple[str, bool]] = []

        def close() -> None:
            if any(is_named for _, is_named in group):
                named.extend(x for x, _ in group)
            else:
                bare.extend(x for x, _ in group if x.isupper())
            group.clear()

        rejected: list[str] = []
        negating = False  # after "not", through a list it heads ("not (B) or C")
        n = len(tokens)
        for i, (w, pos) in enumerate(tokens):
            low = w.lower()
            if len(w) != 1 or w.upper() not in self.letters:
                if group and not (low in _JOINERS or low in _LETTER_SEPARATORS):
                    close()
                negating = low == "not" or (negating and (low in _NEGATED_LIST or low in ("option", "choice")
                                                          or not w[0].isalnum()))
                continue
            if negating:
                close()
                rejected.append(w.upper())
                continue  # "B, not C", "not option C": rejected
            prev = tokens[i - 1][0] if i else ""
            nxt = tokens[i + 1][0] if i + 1 < n else ""
            back = i - 1
            while back >= 0 and tokens[back][0] in ("(", "["):
                back -= 1
            before = tokens[back][0].lower() if back >= 0 else ""
            # "A" before a lowercase word is the article ("A patient …", "A is wrong"), unless it is joined to
            # another letter ("A or B", "B or A is correct").
            if not group and w in "Aa" and nxt[:1].islower() and nxt.lower() not in _JOINERS:
                close()
                continue
            parenthesised = prev in ("(", "[") and nxt in (")", "]")
            # "C. text" / "C) text" / "C: text": an option label, as in an echoed option list
            labelled = w.isupper() and nxt in (".", ")", ":") and i + 2 < n
            is_named = (parenthesised or labelled or i == first_word or pos in after_phrase
                        or before in ("option", "choice"))
            group.append((w.upper() if is_named or w.isupper() else w, is_named))
        close()
        named = [x.upper() for x in named]
        found = named or bare
        return Reading(_distinct(found), None if found else f"no option letter ({self.letters}) named",
                       _distinct(rejected))

    def find(self, text: str, *, cut: bool) -> Reading:
        """Answer phrases ("The correct answer is B"), else a last line that is exactly a letter. An echoed
        option list ("A. … B. … C. … D. …") commits to nothing: its last line is an option, not a letter."""
        committed = phrase_reading(self, text)
        if committed.named or committed.rejected:
            return committed
        if not cut and (letter := self._bare(last_line(text))):
            return Reading((letter,))
        return NOTHING

    def equal(self, pred: str, target: str) -> bool:
        return pred == target


# -- numbers --------------------------------------------------------------------------------------------------------

#: Exactly one number as the prompt asks for it: thousands separators only in groups of three.
_STRICT_NUMBER = re.compile(r"-?\$?\s?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)")
#: Numbers, arithmetic and words. A comma between digits is a thousands separator however the digits are
#: grouped ("1,2345" is 12345, as in lm-eval's GSM8K filters).
_NUM_TOKENS = re.compile(
    r"(?P<num>(?:\$\s?)?(?:\d+(?:,\d+)*(?:\.\d+)?|\.\d+)%?)"
    r"|(?P<op>[-+*/×÷−–^])"
    r"|(?P<eq>=)"
    r"|(?P<word>[^\W\d_]+(?:['’][^\W\d_]+)*)"
    r"|(?P<sym>[^\s\w])"
)
_TRANSPARENT = {"(", ")", "[", "]", "{", "}", "$", "\\"}
_NUMBER_JOIN = _JOINERS


def _to_decimal(s: str) -> Decimal | None:
    try:
        d = Decimal(s.replace(",", "").replace("$", "").replace(" ", "").rstrip(".").rstrip("%"))
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


@dataclass
class _Chain:
    """A run of numbers joined by arithmetic: ``2000 - 200 = 1800``. Its value is what it comes to (the
    single number after its last ``=``), or ``None`` for an expression without a result ("10-15", "3/4")."""

    first: int  # token indices
    last: int
    value: str | None
    text: str
    operands: tuple[str, ...]  # every number in it


def _tokens(t: str) -> list[tuple[str, str, int, int]]:
    """(kind, text, start, end) with signs attached, numbers glued to a preceding letter ("B12", "1e3")
    demoted to words, ``x`` between numbers read as times, and brackets, ``$`` and ``\\`` dropped."""
    raw = [(m.lastgroup or "sym", m.group(), m.start(), m.end()) for m in _NUM_TOKENS.finditer(t)]
    out: list[tuple[str, str, int, int]] = []
    for i, (kind, text, s, e) in enumerate(raw):
        if kind == "sym" and text in _TRANSPARENT:
            continue
        prev = out[-1] if out else None
        if kind == "num" and prev is not None and prev[3] == s and prev[0] == "word":
            kind = "word"  # "B12", "e3": part of a word
        if kind == "num" and prev is not None and prev[0] == "op" and prev[1] in "-−" and prev[3] == s:
            before = out[-2] if len(out) >= 2 else None
            if before is None or before[0] not in ("num",):
                out[-1] = ("num", "-" + text, prev[2], e)  # a sign, not a minus
                continue
        if kind == "word" and text.lower() == "x" and prev is not None and prev[0] == "num":
            nxt = raw[i + 1] if i + 1 < len(raw) else None
            if nxt is not None and nxt[0] == "num":
                kind = "op"
        out.append((kind, text, s, e))
    return out


def _chains(toks: list[tuple[str, str, int, int]], t: str) -> list[_Chain]:
    chains: list[_Chain] = []
    i, n = 0, len(toks)
    while i < n:
        if toks[i][0] != "num":
            i += 1
            continue
        j = i
        while j + 2 < n and toks[j + 1][0] in ("op", "eq") and toks[j + 2][0] == "num":
            j += 2
        parts = toks[i : j + 1]
        eqs = [k for k, tok in enumerate(parts) if tok[0] == "eq"]
        result = parts[eqs[-1] + 1 :] if eqs else parts
        value = _canonical_number(result[0][1]) if len(result) == 1 else None
        operands = _distinct(_canonical_number(tok[1]) for tok in parts if tok[0] == "num")
        chains.append(_Chain(i, j, value, t[parts[0][2] : parts[-1][3]], operands))
        i = j + 1
    return chains


@dataclass(frozen=True)
class Number:
    """A final number (GSM8K). Strict: the region is one number — commas as thousands separators, a leading
    ``$`` or a trailing ``%``/period allowed, nothing else. Read: the number after an answer phrase ("The
    answer is 18, not 20" is 18), else the last number (units and words around it do not matter: "18 mg",
    "$18.00"); arithmetic counts as its result (see the module docstring). ``18``, ``18.00``, ``$18`` and
    ``18.`` are the same answer (exact decimal comparison). A fraction is no number ("3/4" is neither 3 nor
    4); scientific notation is not understood: GSM8K answers are plain numbers."""

    name: str = "number"

    def normalize_target(self, target: str) -> str:
        t = target.split("####")[-1].strip()
        c = _canonical_number(t)
        if c is None:
            raise ValueError(f"numeric target expected (optionally after '####'), got {target!r}")
        return c

    def strict(self, region: str) -> str | None:
        t = normalize(region).strip().rstrip(".").rstrip("%").strip()
        if _STRICT_NUMBER.fullmatch(t):
            return _canonical_number(t)
        return None

    def read(self, text: str) -> Reading:
        t = normalize(text).replace("####", " answer: ")
        toks = _tokens(t)
        chains = _chains(toks, t)
        if not chains:
            return Reading(problem="no number")

        def between(a: _Chain, b: _Chain) -> list[str]:
            return [tok[1].lower() for tok in toks[a.last + 1 : b.first]]

        rejected = {k for k, c in enumerate(chains) if c.first and toks[c.first - 1][1].lower() == "not"}
        # groups of chains joined by an alternative ("1800 or 1900", "10 to 15", "5, 6")
        group = list(range(len(chains)))
        for k in range(1, len(chains)):
            words = between(chains[k - 1], chains[k])
            if k not in rejected and all(w in _NUMBER_JOIN or w in (",", ";", "|") for w in words):
                group[k] = group[k - 1]
        # committed: the chains right after an answer phrase, else the last chain with a value
        starts = [toks[c.first][2] for c in chains]
        committed = []
        for end in sorted(_phrase_ends(t)):
            k = bisect_left(starts, end)
            if k < len(chains) and not t[end : starts[k]].strip(" \"'“”‘’:(=$"):
                committed.append(k)
        if not committed:
            readable = [k for k, c in enumerate(chains) if c.value is not None and k not in rejected]
            if not readable:
                unread = [k for k in range(len(chains)) if k not in rejected]
                if not unread:
                    return Reading(problem="no number but rejected ones",
                                   rejected=_distinct(chains[k].value for k in sorted(rejected)))
                readable = unread
            committed = [readable[-1]]
        groups = {group[k] for k in committed}
        members = [c for k, c in enumerate(chains) if group[k] in groups and k not in rejected]
        # An expression without a result ("10-15", "0 - 72", "3/4") names its numbers and commits to none.
        named = _distinct(v for c in members for v in ((c.value,) if c.value is not None else c.operands))
        expressions = [c.text for c in members if c.value is None]
        if expressions:
            problem = f"an expression without a result ({expressions[-1]})"
            return Reading(named if len(named) > 1 else (), problem)
        return Reading(named)

    def find(self, text: str, *, cut: bool) -> Reading:
        """Answer phrases ("The answer is 2000 - 200 = 1800", "#### 72"); failing those, the last number
        of the text (lm-eval's flexible-extract) — never for a completion cut at the token limit."""
        committed = phrase_reading(self, text)
        if committed.named or cut:
            return committed
        return self.read(text)

    def equal(self, pred: str, target: str) -> bool:
        a, b = _to_decimal(pred), _to_decimal(target)
        return a is not None and b is not None and a == b


# -- free text ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FreeText:
    """A free-text clinical answer. There is nothing to extract beyond the answer region; agreement with the
    reference is decided by a judge (LLM or offline proxy), never by string equality. Its flexible reading is
    the primary one: a judge reads only the answer region."""

    name: str = "free"

    def normalize_target(self, target: str) -> str:
        return target.strip()

    def strict(self, region: str) -> str | None:
        return region.strip() or None

    def read(self, text: str) -> Reading:
        t = text.strip()
        return Reading((t,)) if t else Reading(problem="blank answer")

    def find(self, text: str, *, cut: bool) -> Reading:
        return NOTHING

    def equal(self, pred: str, target: str) -> bool:  # pragma: no cover - judged, never compared
        raise TypeError("free-text answers are judged, not compared")


def answer_type(name: str, *, letters: str = DEFAULT_LETTERS) -> AnswerType:
    """The answer type called ``name`` (``yesno``, ``choice``, ``number``, ``free``)."""
    types: dict[str, AnswerType] = {
        "yesno": YesNoMaybe(),
        "choice": LetterChoice(letters=letters),
        "number": Number(),
        "free": FreeText(),
    }
    if name not in types:
        from ..errors import did_you_mean

        raise ValueError(f"unknown answer type {name!r}{did_you_mean(name, types)}; known: {sorted(types)}")
    return types[name]
