"""Render a :class:`~medbench.harness.gate.evaluate.GateResult`: a terminal table, Markdown, JUnit XML.

Markdown fits a GitHub step summary (``--markdown "$GITHUB_STEP_SUMMARY"``) or a PR comment; JUnit XML has
one test case per rule (per task and checkpoint pair), a ``failure`` element for a regression and a
``skipped`` element for a "*" rule that does not apply, so any CI system can show the verdicts. What made the
gate fail closed (a failed checkpoint, a missing task, nothing checked) is shown first in every output, and in
JUnit as a failed test case of type ``fails-closed``. A value that rests on the offline proxy judge carries
" (proxy)".
"""

from __future__ import annotations

import html
import xml.etree.ElementTree as ET

from medbench.harness.gate.evaluate import Closed, GateResult, RuleResult, format_value

STATUS_WORD = {"pass": "PASS", "fail": "FAIL", "skip": "skip"}
STATUS_ICON = {"pass": "✅", "fail": "❌", "skip": "⏭️"}


def _threshold(r: RuleResult) -> str:
    rule = r.rule
    if rule.check == "non_inferiority_margin":
        return f"NI margin {100 * rule.threshold:.1f} pts"
    if rule.check == "max_changed_documents":
        return f"max_changed_documents {int(rule.threshold)}"
    if rule.check in ("max_drop", "max_increase", "max_change"):
        amount = f"{100 * rule.threshold:.1f} pts" if rule.spec.is_rate else f"{rule.threshold:g}"
        return f"{rule.check} {amount}"
    return f"{rule.check} {format_value(rule, rule.threshold, r.unit)}"


def _pair_label(r: RuleResult | Closed) -> str:
    if r.candidate_checkpoint is None and r.baseline_checkpoint is None:
        return "run"
    return f"{r.candidate_checkpoint or '—'} vs {r.baseline_checkpoint or '—'}"


def _value(r: RuleResult, value: float | None) -> str:
    text = format_value(r.rule, value, r.unit)
    return text + " (proxy)" if r.proxy and value is not None else text


def _headline(result: GateResult) -> str:
    n = len(result.results)
    skipped = sum(r.status == "skip" for r in result.results)
    extra = f", {skipped} skipped" if skipped else ""
    if result.passed:
        return f"passed: all {n - skipped} rule checks passed{extra}"
    closed = (f"; fails closed: {len(result.closed)} problem{'s' if len(result.closed) != 1 else ''} (missing "
              f"or failed, nothing to vouch for)") if result.closed else ""
    return f"FAILED: {len(result.failures)} of {n - skipped} rule checks regressed{extra}{closed}"


def _closed_line(c: Closed) -> str:
    where = " ".join(x for x in (_pair_label(c) if _pair_label(c) != "run" else "", c.task or "") if x)
    return f"{where + ': ' if where else ''}{c.message}"


def _sides(result: GateResult) -> tuple[str, str]:
    cks = sorted({c for c, _ in result.checkpoint_pairs})
    bks = sorted({b for _, b in result.checkpoint_pairs})
    return (
        f"{result.candidate.describe()}, checkpoint {', '.join(cks)}",
        f"{result.baseline.describe()}, checkpoint {', '.join(bks)}",
    )


def render_terminal(result: GateResult) -> str:
    """A plain-text table, failures first in the summary line, for the CI log."""
    cand, base = _sides(result)
    multi = len(result.checkpoint_pairs) > 1
    header = (["checkpoints"] if multi else []) + ["task", "metric", "check", "candidate", "baseline", "verdict"]
    rows = []
    for r in result.results:
        rows.append(
            ([_pair_label(r)] if multi else [])
            + [r.task, r.rule.metric, _threshold(r), _value(r, r.candidate_value),
               _value(r, r.baseline_value) if r.baseline_value is not None else "",
               STATUS_WORD[r.status]]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)] if rows else [len(h) for h in header]

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

    out = [f"medbench gate  candidate: {cand}", f"               baseline:  {base}",
           f"               alpha={result.rules.alpha:g} one-sided" + (", Holm-corrected" if result.holm else ""), ""]
    out += [line(header), line(["-" * w for w in widths])]
    if result.closed:
        out = out[:4] + ["FAILS CLOSED (nothing checked is not a pass):"] + [f"  FAIL {_closed_line(c)}"
                                                                            for c in result.closed] + [""] + out[4:]
    for r, cells in zip(result.results, rows):
        out.append(line(cells))
        out.append("    " + r.detail)
    if result.notes:
        out += ["", "notes:"] + [f"  - {n}" for n in dict.fromkeys(result.notes)]
    out += ["", f"gate {_headline(result)}"]
    for c in result.closed:
        out.append(f"  FAIL {_closed_line(c)}")
    for r in result.failures:
        out.append(f"  FAIL {(_pair_label(r) + ' ') if multi else ''}{r.task} {r.rule.metric} {_threshold(r)}: {r.detail}")
    return "\n".join(out)


def _md(text: object) -> str:
    return html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")


def render_markdown(result: GateResult) -> str:
    """GitHub-flavoured Markdown: a headline, the rules table, the notes."""
    cand, base = _sides(result)
    icon = "✅" if result.passed else "❌"
    multi = len(result.checkpoint_pairs) > 1
    lines = [
        f"### {icon} medbench gate {_md(_headline(result))}",
        "",
        f"- **candidate:** {_md(cand)}",
        f"- **baseline:** {_md(base)}",
        f"- **α** = {result.rules.alpha:g} (one-sided){', Holm-corrected across statistical checks' if result.holm else ''}",
        "",
        "| | " + ("checkpoints | " if multi else "") + "task | metric | check | candidate | baseline | detail |",
        "|---|" + ("---|" if multi else "") + "---|---|---|---:|---:|---|",
    ]
    for c in result.closed:
        cells = [STATUS_ICON["fail"]] + ([_pair_label(c)] if multi else []) + [
            f"`{c.task}`" if c.task else "—", "—", "fails closed", "", "", c.message]
        lines.append("| " + " | ".join(_md(x) for x in cells) + " |")
    ordered = sorted(result.results, key=lambda r: {"fail": 0, "pass": 1, "skip": 2}[r.status])
    for r in ordered:
        cells = [STATUS_ICON[r.status]] + ([_pair_label(r)] if multi else []) + [
            f"`{r.task}`", f"`{r.rule.metric}`", _threshold(r), _value(r, r.candidate_value),
            _value(r, r.baseline_value) if r.baseline_value is not None else "", r.detail,
        ]
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    if result.notes:
        lines += ["", "<details><summary>Notes</summary>", ""]
        lines += [f"- {_md(n)}" for n in dict.fromkeys(result.notes)]
        lines += ["", "</details>"]
    return "\n".join(lines) + "\n"


def render_junit(result: GateResult) -> str:
    """JUnit XML: one <testsuite> per checkpoint pair, one <testcase> per rule check."""
    suites = ET.Element("testsuites", name="medbench gate")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    if result.closed:
        suite = ET.SubElement(suites, "testsuite", name="medbench gate: fails closed", errors="0", time="0",
                              tests=str(len(result.closed)), failures=str(len(result.closed)), skipped="0")
        for c in result.closed:
            case = ET.SubElement(suite, "testcase", classname=f"medbench.gate.{c.task or 'run'}",
                                 name=f"fails closed: {_pair_label(c)}", time="0")
            ET.SubElement(case, "failure", message=c.message, type="fails-closed").text = _closed_line(c)
        totals["tests"] += len(result.closed)
        totals["failures"] += len(result.closed)
    for cand_ck, base_ck in result.checkpoint_pairs:
        cases = [r for r in result.results if (r.candidate_checkpoint, r.baseline_checkpoint) == (cand_ck, base_ck)]
        counts = {
            "tests": len(cases),
            "failures": sum(r.status == "fail" for r in cases),
            "skipped": sum(r.status == "skip" for r in cases),
        }
        for k, v in counts.items():
            totals[k] += v
        suite = ET.SubElement(
            suites, "testsuite", name=f"medbench gate: {cand_ck} vs {base_ck}", errors="0", time="0",
            **{k: str(v) for k, v in counts.items()},
        )
        props = ET.SubElement(suite, "properties")
        for name, value in (
            ("candidate", result.candidate.describe()), ("candidate_checkpoint", cand_ck),
            ("baseline", result.baseline.describe()), ("baseline_checkpoint", base_ck),
            ("alpha", f"{result.rules.alpha:g}"), ("holm", str(result.holm).lower()),
        ):
            ET.SubElement(props, "property", name=name, value=value)
        for r in cases:
            case = ET.SubElement(
                suite, "testcase", classname=f"medbench.gate.{r.task}",
                name=f"{r.rule.metric} {_threshold(r)}", time="0",
            )
            if r.status == "fail":
                failure = ET.SubElement(case, "failure", message=r.detail, type="regression")
                failure.text = f"{r.task} {r.rule.metric} {_threshold(r)} ({cand_ck} vs {base_ck}): {r.detail}"
            elif r.status == "skip":
                ET.SubElement(case, "skipped", message=r.detail)
            else:
                ET.SubElement(case, "system-out").text = r.detail
    for k, v in totals.items():
        suites.set(k, str(v))
    suites.set("errors", "0")
    ET.indent(suites)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(suites, encoding="unicode") + "\n"
