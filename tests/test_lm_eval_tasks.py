"""The medbench lm-eval tasks: the registry read from the YAMLs, the prompts lm-eval renders, the scoring
rule behind every metric, and every task run end to end through lm-eval on a tiny model and the sample data."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest
from medbench.tasks import prompts, registry, scoring
from medbench.tasks.graders import JudgeVerdict
from medbench.tasks.loaders import HEALTH_SPECIALTIES, SAMPLE_DATA_DIR, health_task_name

SAMPLE_HEALTH = ("Cardiology", "Lab_Medicine", "Dermatology")
NON_HEALTH = (
    "medbench_gsm8k",
    "medbench_medical_cot",
    "medbench_medmcqa",
    "medbench_medqa",
    "medbench_mmlu_medical",
    "medbench_pubmedqa",
    "medbench_pubmedqa_ll",
)


def _judge(agree: bool = True, kind: str = "proxy"):
    def judge(answer: str, reference: str) -> JudgeVerdict:
        return JudgeVerdict(agree=agree, score=1.0 if agree else 0.0, kind=kind, rationale="scripted")  # type: ignore[arg-type]

    return judge


@pytest.fixture(scope="module")
def task_manager():
    from lm_eval.tasks import TaskManager

    return TaskManager(
        include_path=str(registry.include_path()),
        include_defaults=False,
        metadata={"data_dir": str(SAMPLE_DATA_DIR)},
    )


def _lm_task(task_manager, name):
    return task_manager.load([name])["tasks"][name]


# --- the registry ---------------------------------------------------------------------------------------------


def test_registry_lists_every_task_from_the_yamls():
    names = [t.name for t in registry.list_tasks()]
    assert set(NON_HEALTH) <= set(names)
    assert sorted(n for n in names if n.startswith("medbench_health_")) == sorted(
        health_task_name(s) for s in HEALTH_SPECIALTIES
    )
    assert len(names) == len(NON_HEALTH) + 52


def test_task_specs_carry_layout_answer_letters_version_and_budget():
    spec = registry.get_task("medbench_pubmedqa")
    assert (spec.family, spec.output_type, spec.layout, spec.answer, spec.version, spec.max_gen_toks) == (
        "pubmedqa",
        "generate_until",
        "xml",
        "yesno",
        "2",
        1024,
    )
    ll = registry.get_task("medbench_pubmedqa_ll")
    assert (ll.output_type, ll.layout, ll.answer, ll.max_gen_toks) == ("multiple_choice", None, "yesno", None)
    cot = registry.get_task("medbench_medical_cot")
    assert (cot.layout, cot.answer, cot.max_gen_toks) == ("think", "free", 2048)
    assert registry.get_task("medbench_gsm8k").answer == "number"
    for name in ("medbench_medmcqa", "medbench_medqa", "medbench_mmlu_medical"):
        spec = registry.get_task(name)
        assert (spec.answer, spec.letters, spec.group) == ("choice", "ABCD", "medbench_mcq")
    card = registry.get_task("medbench_health_cardiology")
    assert (card.family, card.group, card.subgroup, card.letters) == (
        "health",
        "medbench_health",
        "Cardiology",
        "ABCD",
    )
    assert registry.get_task("medbench_pubmedqa").group is None


def test_groups_and_expand():
    groups = registry.groups()
    assert groups["medbench_health"] == [health_task_name(s) for s in HEALTH_SPECIALTIES]
    assert groups["medbench_mcq"] == ["medbench_medmcqa", "medbench_medqa", "medbench_mmlu_medical"]
    assert sorted(groups["medbench"]) == sorted(t.name for t in registry.list_tasks())
    expanded = [s.name for s in registry.expand(["medbench_medqa", "medbench_mcq", "medbench_gsm8k"])]
    assert expanded == ["medbench_medqa", "medbench_medmcqa", "medbench_mmlu_medical", "medbench_gsm8k"]


def test_unknown_names_list_what_exists_and_the_closest_match():
    with pytest.raises(registry.UnknownTaskError) as e:
        registry.get_task("medbench_pubmedq")
    assert "(did you mean 'medbench_pubmedqa'?)" in str(e.value) and "medbench_gsm8k" in str(e.value)
    with pytest.raises(registry.UnknownTaskError, match="did you mean 'medbench_health'"):
        registry.expand(["medbench_helth"])
    assert isinstance(e.value, KeyError)


@pytest.fixture
def scratch_registry(tmp_path, monkeypatch):
    """The registry pointed at an empty include path, to write broken task YAMLs into."""
    monkeypatch.setattr(registry, "include_path", lambda: tmp_path)
    registry._index.cache_clear()
    yield tmp_path
    registry._index.cache_clear()


def test_a_task_yaml_lm_eval_cannot_read_is_an_error_not_a_missing_task(scratch_registry):
    bad = scratch_registry / "bad.yaml"
    bad.write_text("task: medbench_x\n  metadata: [unclosed\n")
    with pytest.raises(registry.TaskConfigError, match=r"bad.yaml: lm-eval cannot read this task YAML"):
        registry.list_tasks()


def test_a_task_without_medbench_metadata_is_refused(scratch_registry):
    (scratch_registry / "t.yaml").write_text(
        "task: medbench_x\noutput_type: generate_until\nmetadata:\n  version: 1\n"
    )
    with pytest.raises(
        registry.TaskConfigError, match=r"t.yaml: metadata.layout is None; expected one of xml, think"
    ):
        registry.list_tasks()
    (scratch_registry / "t.yaml").write_text("task: medbench_x\n")
    with pytest.raises(registry.TaskConfigError, match="needs a metadata block with a version"):
        registry.list_tasks()


def test_a_bad_data_dir_reaches_the_lm_eval_user_as_a_data_error():
    from lm_eval.tasks import TaskManager
    from medbench.tasks.loaders import DataError

    manager = TaskManager(
        include_path=str(registry.include_path()),
        include_defaults=False,
        metadata={"data_dir": "/nonexistent/medbench-data"},
    )
    with pytest.raises(
        DataError, match=r"/nonexistent/medbench-data \(from metadata data_dir\) does not exist"
    ):
        manager.load(["medbench_gsm8k"])


def test_generated_health_yamls_are_up_to_date():
    path = registry.include_path() / "health" / "_generate_configs.py"
    spec = importlib.util.spec_from_file_location("medbench_health_generator", path)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)  # type: ignore[union-attr]
    expected = gen.expected_files()
    on_disk = set((registry.include_path() / "health").glob("medbench_health_*.yaml")) | {
        registry.include_path() / "health" / "_medbench_health.yaml"
    }
    assert on_disk == set(expected), "run: python tasks/health/_generate_configs.py"
    for p, text in expected.items():
        assert p.read_text(encoding="utf-8") == text, (
            f"{p.name} is stale: run python tasks/health/_generate_configs.py"
        )


def test_generation_is_greedy_with_no_early_stop(task_manager):
    task = _lm_task(task_manager, "medbench_gsm8k")
    gen = task.config.generation_kwargs
    assert gen["do_sample"] is False and gen["max_gen_toks"] == 1024 and gen["until"] == []
    assert task.VERSION == 2


# --- prompts as lm-eval renders them --------------------------------------------------------------------------


def _chat(task, doc, gen_prefix=None):
    captured = {}

    def template(messages, add_generation_prompt=True):
        captured["messages"], captured["add_generation_prompt"] = messages, add_generation_prompt
        return "rendered"

    task.fewshot_context(
        doc, 0, apply_chat_template=True, chat_template=template, gen_prefix=task.doc_to_prefix(doc)
    )
    return captured


def test_pubmedqa_prompt_is_the_grpo_recipes_with_and_without_a_chat_template(task_manager):
    task = _lm_task(task_manager, "medbench_pubmedqa")
    doc = task.test_docs()[0]
    user = prompts.pubmedqa_user_prompt(doc["CONTEXTS"], doc["QUESTION"])
    assert task.fewshot_context(doc, 0) == prompts.SYSTEM_PROMPT + user
    chat = _chat(task, doc)
    assert chat["messages"] == [
        {"role": "system", "content": prompts.SYSTEM_PROMPT},
        {"role": "user", "content": user},
    ]
    assert chat["add_generation_prompt"] is True


def test_choice_prompts_list_the_documents_letters(task_manager):
    medqa = _lm_task(task_manager, "medbench_medqa")
    doc = medqa.test_docs()[0]
    text = medqa.fewshot_context(doc, 0)
    assert text.startswith(prompts.SYSTEM_PROMPT + "\n\nAnswer the following question:\n")
    assert "\nE. Escherichia coli\n With 'A', 'B', 'C', 'D' or 'E'." in text
    health = _lm_task(task_manager, "medbench_health_cardiology")
    hdoc = health.test_docs()[0]
    assert health.fewshot_context(hdoc, 0) == prompts.SYSTEM_PROMPT + (
        "\n\nAnswer the following question:\n"
        + hdoc["Questions"]
        + "\n With 'A', 'B', 'C' or 'D'. You need to carefully review the context and reason before answering."
    )


def test_medical_cot_prompt_is_the_sft_recipes_and_opens_think(task_manager):
    task = _lm_task(task_manager, "medbench_medical_cot")
    doc = task.test_docs()[0]
    assert doc["showcase"] and doc["Question"] == prompts.CYSTOMETRY_QUESTION
    # plain text: exactly the recipe's inference prompt, ending inside <think>
    assert task.fewshot_context(doc, 0, gen_prefix=task.doc_to_prefix(doc)) == prompts.sft_inference_prompt(
        prompts.CYSTOMETRY_QUESTION
    )
    # chat template: no system turn, and the assistant turn is continued from "<think>"
    chat = _chat(task, doc)
    assert [m["role"] for m in chat["messages"]] == ["user", "assistant"]
    assert chat["messages"][1]["content"] == "<think>" and chat["add_generation_prompt"] is False


def test_pubmedqa_ll_prompt_and_choices_are_lm_evals_own(task_manager):
    from lm_eval.tasks.pubmedqa import preprocess_pubmedqa

    task = _lm_task(task_manager, "medbench_pubmedqa_ll")
    for doc in task.test_docs():
        assert task.doc_to_text(doc) == preprocess_pubmedqa.doc_to_text(doc)
        assert task.doc_to_choice(doc) == ["yes", "no", "maybe"]


# --- scoring ----------------------------------------------------------------------------------------------------


def _sample_doc(loader, *args, **kwargs) -> dict:
    return dict(loader(*args, data_dir=SAMPLE_DATA_DIR, **kwargs)["test"][0])


def test_doc_info_for_each_family():
    from medbench.tasks import loaders

    info = scoring.doc_info(registry.get_task("medbench_pubmedqa"), _sample_doc(loaders.load_pubmedqa))
    assert info == {
        "doc_key": "12377809",
        "question": "Does daily walking lower resting blood pressure in adults with stage 1 hypertension?",
        "target": "yes",
        "subgroup": None,
        "showcase": False,
    }
    health = scoring.doc_info(
        registry.get_task("medbench_health_cardiology"), _sample_doc(loaders.load_health, "Cardiology")
    )
    assert (health["subgroup"], health["target"], health["doc_key"][:17]) == (
        "Cardiology",
        "A",
        "health-Cardiology",
    )
    assert health["question"].startswith("Which finding on an ECG")
    mmlu = scoring.doc_info(
        registry.get_task("medbench_mmlu_medical"), _sample_doc(loaders.load_mmlu_medical)
    )
    assert (mmlu["subgroup"], mmlu["target"]) == ("anatomy", "B")
    gsm = scoring.doc_info(registry.get_task("medbench_gsm8k"), _sample_doc(loaders.load_gsm8k))
    assert gsm["target"] == "115" and gsm["doc_key"].startswith("gsm8k-")
    cot = scoring.doc_info(registry.get_task("medbench_medical_cot"), _sample_doc(loaders.load_medical_o1))
    assert (
        cot["showcase"] is True
        and cot["doc_key"] == "o1-en-0"
        and cot["question"] == prompts.CYSTOMETRY_QUESTION
    )


def test_grade_doc_uses_the_tasks_layout_answer_type_and_the_documents_letters():
    from medbench.tasks import loaders

    pub = scoring.grade_doc(
        registry.get_task("medbench_pubmedqa"),
        _sample_doc(loaders.load_pubmedqa),
        "<reasoning>\nThe trial shows a fall.\n</reasoning>\n<answer>\nyes\n</answer>",
    )
    assert (pub.outcome, pub.strict_correct, pub.format_strict, pub.layout) == ("correct", True, True, "xml")
    # MedQA's local file has five options: E is a valid answer there
    medqa_doc = dict(loaders.load_medqa(data_dir=SAMPLE_DATA_DIR)["test"][2])
    rec = scoring.grade_doc(
        registry.get_task("medbench_medqa"),
        medqa_doc,
        "<reasoning>\nGraves disease.\n</reasoning>\n<answer>\nE\n</answer>",
    )
    assert (medqa_doc["letters"], rec.outcome, rec.extracted) == ("ABCDE", "correct", "E")
    # GSM8K: right number, layout ignored -> no answer region (acc 0), right in the flexible reading
    gsm = scoring.grade_doc(
        registry.get_task("medbench_gsm8k"),
        _sample_doc(loaders.load_gsm8k),
        "23 patients a day, so 23 * 5 = 115. The answer is 115.",
    )
    assert (gsm.outcome, gsm.flexible_outcome, gsm.strict_correct) == ("unparseable", "correct", False)
    metrics = scoring.lm_eval_metrics(registry.get_task("medbench_gsm8k"), gsm)
    assert metrics == {
        "acc": 0.0,
        "acc_strict": 0.0,
        "acc_flexible": 1.0,
        "unparseable": 1.0,
        "format_strict": 0.0,
        "format_soft": 0.0,
        "reasoning_words": 0.0,
        "completion_words": 14.0,
    }


def test_medical_cot_is_judged_and_the_proxy_is_labelled():
    from medbench.tasks import loaders

    spec, doc = registry.get_task("medbench_medical_cot"), _sample_doc(loaders.load_medical_o1)
    completion = "She has stress incontinence.\n</think>\nNormal residual volume, no detrusor contractions."
    rec = scoring.grade_doc(spec, doc, completion, judge=_judge(agree=True, kind="proxy"))
    assert (rec.outcome, rec.layout, rec.think_ok, rec.judge.kind) == ("correct", "think", True, "proxy")
    assert rec.extracted == "Normal residual volume, no detrusor contractions."
    assert scoring.lm_eval_metrics(spec, rec)["judge_proxy"] == 1.0
    llm = scoring.grade_doc(spec, doc, completion, judge=_judge(agree=False, kind="llm"))
    assert llm.outcome == "wrong" and scoring.lm_eval_metrics(spec, llm)["judge_proxy"] == 0.0
    unclosed = scoring.grade_doc(spec, doc, "still thinking about the bladder", judge=_judge())
    assert (unclosed.outcome, unclosed.unclosed_tag, unclosed.truncated) == ("unparseable", True, None)
    assert "judge_proxy" not in scoring.lm_eval_metrics(spec, unclosed)


def test_grade_loglikelihood_argmax_with_first_choice_on_ties():
    from medbench.tasks import loaders

    spec, doc = registry.get_task("medbench_pubmedqa_ll"), _sample_doc(loaders.load_pubmedqa)  # gold: yes
    assert scoring.grade_loglikelihood(spec, doc, [-1.0, -2.0, -3.0]).outcome == "correct"
    rec = scoring.grade_loglikelihood(spec, doc, [-2.0, -1.0, -1.0])
    assert (rec.outcome, rec.extracted, rec.layout) == ("wrong", "no", "loglikelihood")
    assert scoring.grade_loglikelihood(spec, doc, [-1.0, -1.0, -5.0]).extracted == "yes"
    assert scoring.lm_eval_metrics(spec, rec) == {"acc": 0.0}
    with pytest.raises(ValueError, match="3 choices"):
        scoring.grade_loglikelihood(spec, doc, [-1.0, -2.0])
    with pytest.raises(ValueError, match="grade_loglikelihood"):
        scoring.grade_doc(spec, doc, "yes")


# --- end to end through lm-eval ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_every_task_runs_end_to_end_on_the_tiny_model(tiny_model_dir, task_manager, monkeypatch):
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    monkeypatch.setattr(scoring, "_default_judge", lambda: _judge(agree=True, kind="proxy"))
    lm = HFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=4)
    tasks = [
        "medbench_pubmedqa",
        "medbench_pubmedqa_ll",
        "medbench_medical_cot",
        "medbench_gsm8k",
        "medbench_mcq",
        *(health_task_name(s) for s in SAMPLE_HEALTH),
    ]
    out = simple_evaluate(
        model=lm,
        tasks=tasks,
        task_manager=task_manager,
        limit=2,
        log_samples=True,
        gen_kwargs={"max_gen_toks": 12},
        apply_chat_template=True,
    )
    generative = [t for t in registry.expand(tasks) if t.output_type == "generate_until"]
    assert len(generative) == 9
    for spec in generative:
        result = out["results"][spec.name]
        for metric in scoring.GENERATIVE_METRICS:
            assert 0.0 <= result[f"{metric},none"] <= (12 if metric == "reasoning_words" else 1.0), (
                spec.name,
                metric,
            )
        assert out["versions"][spec.name] == 2
        samples = out["samples"][spec.name]
        assert len(samples) == (1 if spec.family == "medical_cot" else 2)  # sample data sizes
        for sample in samples:  # the raw completion is kept, and the doc carries what the harness re-grades
            raw = sample["resps"][0][0]
            info = scoring.doc_info(spec, sample["doc"])
            assert info["doc_key"] and info["target"]
            rec = scoring.grade_doc(spec, sample["doc"], raw, judge=_judge())
            assert scoring.lm_eval_metrics(spec, rec)["acc"] == sample["acc"]
    assert out["results"]["medbench_pubmedqa_ll"]["acc,none"] in (0.0, 0.5, 1.0)
    assert set(out["results"]["medbench_mcq"]) >= {"acc,none", "acc_strict,none", "unparseable,none"}
    showcase = out["samples"]["medbench_medical_cot"][0]
    assert showcase["doc"]["showcase"] and showcase["arguments"][0][0].endswith(
        "<|im_start|>assistant\n<think>"
    )


@pytest.mark.slow
def test_plain_lm_eval_cli_runs_a_task_from_the_include_path(tiny_model_dir, tmp_path):
    env = {
        **os.environ,
        "MEDBENCH_DATA_DIR": str(SAMPLE_DATA_DIR),
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }
    cmd = [
        sys.executable,
        "-m",
        "lm_eval",
        "--include_path",
        str(registry.include_path()),
        "--tasks",
        "medbench_pubmedqa",
        "--model",
        "hf",
        "--model_args",
        f"pretrained={tiny_model_dir}",
        "--limit",
        "1",
        "--gen_kwargs",
        "max_gen_toks=8",
        "--output_path",
        str(tmp_path / "out"),
    ]
    proc = subprocess.run(
        cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (result_file,) = list((tmp_path / "out").rglob("results_*.json"))
    results = json.loads(result_file.read_text())["results"]["medbench_pubmedqa"]
    assert {"acc,none", "acc_strict,none", "unparseable,none", "format_strict,none"} <= set(results)
