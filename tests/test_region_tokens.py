"""Reasoning and answer lengths counted in the tokens the model emitted (issue 14): the backend records where
each generated id lies in the text (``GeneratedTokens.token_chars``, through ``generated_token_chars``), and
the rows count the ids that lie in each region (``region_token_counts``) instead of re-tokenising the regions.
With the real Qwen2 BPE: equal to the tokenizer's count of a region whose edges are token edges in the
completion too (the usual ``<reasoning>\\n…\\n</reasoning>`` layout), multi-byte characters and emoji
included; where the backend recorded nothing (vLLM, a slow tokenizer) the regions are re-tokenised as before.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest
from medbench.harness.backends.lm_backends import generated_token_chars
from medbench.harness.run.records import GeneratedTokens
from medbench.harness.run.rundir import RunWriter
from medbench.harness.run.runner import PlannedTask
from medbench.harness.run.sample_rows import (
    TokenizerCounter,
    region_token_counts,
    request_key,
    rows_from_samples,
)
from medbench.tasks.registry import get_task


@pytest.fixture(scope="module")
def qwen(realdata):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(realdata / "tokenizers" / "Qwen2-1.5B-Instruct_via_Qwen2-Boundless"))


@pytest.fixture(scope="module")
def abstracts(realdata) -> list[str]:
    """Real PubMedQA abstract sentences, cut to end on a word (a region's last token is then its own)."""
    data = json.loads((realdata / "pubmedqa" / "ori_pqal.json").read_text(encoding="utf-8"))
    out = []
    for item in list(data.values())[:60]:
        text = " ".join(item["CONTEXTS"])
        out.append(re.sub(r"\W+$", "", text))
    return out


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _chars(tokenizer, ids: list[int]) -> bytes:
    chars = generated_token_chars(ids, tokenizer)
    assert chars is not None
    return chars


def test_token_chars_add_up_to_the_decoded_text(qwen, abstracts):
    for text in [*abstracts[:10], "ok 🩺👩‍⚕️ fièvre 発熱 😀😀", "é" * 3 + "🩺"]:
        ids = _ids(qwen, text)
        lengths = np.frombuffer(_chars(qwen, ids), dtype="<u2")
        assert len(lengths) == len(ids) and int(lengths.sum()) == len(text)
        assert region_token_counts(_chars(qwen, ids), [[(0, len(text))]], text_length=len(text)) == [len(ids)]


def _layout(reasoning: str, answer: str) -> tuple[str, tuple[int, int], tuple[int, int]]:
    text = f"<reasoning>\n{reasoning}\n</reasoning>\n<answer>\n{answer}\n</answer>"
    r0 = text.index(reasoning)
    a0 = text.rindex(answer)
    return text, (r0, r0 + len(reasoning)), (a0, a0 + len(answer))


@pytest.mark.parametrize("extra", ["", " 🩺 then 👩‍⚕️ and 😀 done", " la fièvre et 発熱 persist"])
def test_region_counts_equal_the_tokenizer_on_real_text(qwen, abstracts, extra):
    counter = TokenizerCounter(qwen)
    for reasoning in abstracts[:40]:
        reasoning += extra
        text, r_span, a_span = _layout(reasoning, "maybe")
        got = region_token_counts(_chars(qwen, _ids(qwen, text)), [[r_span], [a_span]], text_length=len(text))
        assert got == [counter(reasoning), counter("maybe")]


def test_a_region_edge_inside_a_token_counts_that_token(qwen):
    text = "<reasoning>Radiation doses.</reasoning>"  # ">R" is one token in context
    ids = _ids(qwen, text)
    span = (text.index("Radiation"), text.index("</"))
    (n,) = region_token_counts(_chars(qwen, ids), [[span]], text_length=len(text))
    inside = qwen(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    assert n == sum(1 for s, e in inside if s < span[1] and e > span[0])
    assert abs(n - TokenizerCounter(qwen)("Radiation doses.")) <= 1


def test_multibyte_pieces_belong_to_their_character():
    # three ids build one emoji (0, 0, 2 characters: a space and the emoji), then "a", "b"
    chars = np.array([0, 0, 2, 1, 1], dtype="<u2").tobytes()
    assert region_token_counts(chars, [[(1, 2)], [(0, 1)], [(2, 4)], [], [(1, 1)]], text_length=4) == [3, 3, 2, 0, 0]
    # two spans touching one token count it once
    assert region_token_counts(chars, [[(2, 3), (3, 4)]], text_length=4) == [2]
    assert region_token_counts(chars, [[(0, 4)]], text_length=5) is None  # not this completion's tokens


def _log(completions: list[str]) -> list[dict[str, Any]]:
    return [{"doc_id": i, "doc": {"QUESTION": f"q{i}?", "target": "yes", "doc_key": f"pmid{i}"},
             "arguments": [[f"prompt {i}", {"until": ["</answer>"]}]], "resps": [[c]], "filtered_resps": [c],
             "doc_hash": f"h{i}"} for i, c in enumerate(completions)]


def test_rows_count_regions_in_the_generated_tokens_and_fall_back_without_them(qwen, abstracts):
    counter = TokenizerCounter(qwen)
    completions = [_layout(r + " 🩺 ok", a)[0] for r, a in zip(abstracts[:6], ["yes", "no", "maybe"] * 2)]
    completions.append("Sure.\n<reasoning>one</reasoning>\n<reasoning>two</reasoning> <answer>maybe</answer>")
    samples = _log(completions)
    task = PlannedTask(get_task("medbench_pubmedqa"), 512, chat_template=True, chat_template_explicit=False)

    def generated(with_chars: bool, broken: bool = False) -> dict[str, GeneratedTokens]:
        out = {}
        for s, c in zip(samples, completions):
            ids = _ids(qwen, c)
            chars = _chars(qwen, ids[:-3] if broken else ids) if with_chars else None
            out[request_key(s["arguments"][0])] = GeneratedTokens(len(ids), False, chars)
        return out

    def rows(gen):
        return rows_from_samples(samples, checkpoint="ck", task=task, count_tokens=counter,
                                 seconds_for=lambda kind, args: None, generated=gen)

    retokenised = rows(None)
    by_offsets = rows(generated(True))
    fallback = rows(generated(False))
    too_short = rows(generated(True, broken=True))  # ids that do not cover the text: re-tokenised
    for r in (by_offsets, fallback, too_short):
        assert [x["answer_tokens"] for x in r] == [x["answer_tokens"] for x in retokenised]
    assert [x["reasoning_tokens"] for x in fallback] == [x["reasoning_tokens"] for x in retokenised]
    assert [x["reasoning_tokens"] for x in too_short] == [x["reasoning_tokens"] for x in retokenised]
    # the xml layout's regions end on a word here: the emitted tokens are the tokenizer's count of the region
    assert [x["reasoning_tokens"] for x in by_offsets[:6]] == [x["reasoning_tokens"] for x in retokenised[:6]]
    # two reasoning blocks: the tokens in them (the re-tokenised joined text adds the newline between them)
    assert by_offsets[6]["reasoning_tokens"] == counter("one") + counter("two")
    assert retokenised[6]["reasoning_tokens"] == counter("one\ntwo")
    assert all(x["completion_tokens_source"] == "generated" for x in by_offsets + fallback)


def test_token_chars_round_trip_through_the_run_directory(tmp_path, qwen):
    writer = RunWriter(tmp_path)
    chars = _chars(qwen, _ids(qwen, "a 🩺 b"))
    writer.generation_recorder("ck")("k0", GeneratedTokens(4, False, chars))
    writer.generation_recorder("ck")("k1", GeneratedTokens(12, True))
    assert writer.read_generated("ck") == {"k0": GeneratedTokens(4, False, chars), "k1": GeneratedTokens(12, True)}


def test_no_incremental_decoder_means_no_token_chars():
    class Slow:  # a slow (pure Python) tokenizer has no backend_tokenizer
        def decode(self, ids, skip_special_tokens=True):
            return "".join(map(str, ids))

    assert generated_token_chars([1, 2, 3], Slow()) is None


def test_many_completions_at_once_count_as_one_at_a_time(qwen, abstracts):
    from medbench.harness.run.sample_rows import region_token_counts_many

    texts = [_layout(r + " 🩺", "no") for r in abstracts[:8]]
    chars = [_chars(qwen, _ids(qwen, t)) for t, _, _ in texts]
    chars += [b"", np.array([1, 0], dtype="<u2").tobytes()]  # no tokens; a last id that began a character
    regions = [[[r], [a]] for _, r, a in texts] + [[[], []], [[(0, 1)], [(1, 1)]]]
    lengths = [len(t) for t, _, _ in texts] + [0, 1]
    one_by_one = [region_token_counts(c, r, text_length=n) for c, r, n in zip(chars, regions, lengths)]
    assert region_token_counts_many(chars, regions, lengths) == one_by_one
    assert one_by_one[-2:] == [[0, 0], [1, 0]]
