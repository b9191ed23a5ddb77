"""Trainers, the backend-independent pieces: configs, backend choice, data preparation, overlap, provenance.

The recipes themselves (a few steps of SFT and GRPO on a tiny model) are in test_trainers_e2e.py.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
from medbench.tasks import prompts
from medbench.tasks.loaders import SAMPLE_DATA_DIR
from medbench.trainers import config as C
from medbench.trainers.backends import (
    Adjustment,
    BackendChoice,
    BackendError,
    select_backend,
    training_kwargs,
)

CONFIGS = sorted(C.CONFIG_DIR.glob("*.yaml"))


# ---------------------------------------------------------------------------------------------------------
# configs
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_loads_and_starts_with_the_command_that_runs_it(path):
    cfg = C.load_config(path)  # validates every section, and `training` against TRL's own config class
    cmd = C.first_line_command(path)
    assert cmd.startswith(f"medbench train {cfg.recipe} --config trainers/configs/{path.name}"), cmd
    C.trl_config_class(cfg.recipe)(**{**cfg.training, "output_dir": "/tmp/x", "use_cpu": True})


def test_there_are_the_two_recipes_and_their_tiny_cpu_versions():
    names = {p.stem for p in CONFIGS}
    assert {"sft_r1_llama8b_medical", "grpo_qwen25_3b_medical", "sft_tiny_cpu", "grpo_tiny_cpu"} <= names


def test_sft_recipe_values_are_the_tutorials():
    cfg = C.load_config("sft_r1_llama8b_medical")
    assert (cfg.model.name, cfg.model.max_seq_length, cfg.model.load_in_4bit) == (
        "unsloth/DeepSeek-R1-Distill-Llama-8B", 2048, True)
    assert (cfg.lora.r, cfg.lora.alpha, cfg.lora.dropout) == (16, 16, 0.0)
    assert cfg.lora.target_modules == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert cfg.lora.gradient_checkpointing == "unsloth" and cfg.lora.random_state == 3407
    t = cfg.training
    assert (t["per_device_train_batch_size"], t["gradient_accumulation_steps"]) == (2, 4)
    assert (t["warmup_steps"], t["max_steps"], t["learning_rate"]) == (5, 60, 2e-4)
    assert (t["optim"], t["weight_decay"], t["lr_scheduler_type"], t["seed"]) == ("adamw_8bit", 0.01, "linear", 3407)
    assert (cfg.data.dataset, cfg.data.config, cfg.data.split) == (
        "FreedomIntelligence/medical-o1-reasoning-SFT", "en", "train[0:500]")
    assert cfg.output.save_merged_16bit is True


def test_grpo_recipe_values_are_the_tutorials():
    cfg = C.load_config("grpo_qwen25_3b_medical")
    assert cfg.model.name == "Qwen/Qwen2.5-3B-Instruct" and cfg.model.load_in_4bit is True
    assert cfg.model.fast_inference is True and cfg.model.gpu_memory_utilization == 0.5
    assert (cfg.lora.r, cfg.lora.alpha) == (64, 64)
    t = cfg.training
    assert (t["learning_rate"], t["adam_beta1"], t["adam_beta2"], t["weight_decay"]) == (5e-6, 0.9, 0.99, 0.1)
    assert (t["warmup_steps"], t["lr_scheduler_type"], t["optim"]) == (0.1, "cosine", "adamw_8bit")
    assert (t["num_generations"], t["max_completion_length"], t["max_steps"]) == (6, 1024, 750)
    assert (t["save_steps"], t["max_grad_norm"]) == (100, 0.1)
    # TRL 1.15 needs whole groups per generation batch: the recipe's batch 1 becomes 6, and TRL accepts it
    assert t["per_device_train_batch_size"] % t["num_generations"] == 0
    assert cfg.data.sources == ["gsm8k", "pubmedqa_artificial", "health_benchmarks"]
    assert (cfg.data.max_context_chars, cfg.data.max_prompt_tokens) == (1024, 1024)


def test_unknown_fields_name_the_closest_match(tmp_path):
    with pytest.raises(C.ConfigError, match=r"unknown field in section 'lora' 'alpah'.*did you mean 'alpha'"):
        C.load_config("sft_tiny_cpu", ["lora.alpah=8"])
    with pytest.raises(C.ConfigError, match=r"SFTConfig field 'lerning_rate'.*did you mean 'learning_rate'"):
        C.load_config("sft_tiny_cpu", ["training.lerning_rate=1e-4"])
    with pytest.raises(C.ConfigError, match=r"unknown section 'traning'.*did you mean 'training'"):
        C.load_config("sft_tiny_cpu", ["traning.max_steps=2"])
    with pytest.raises(C.ConfigError, match=r"lora.r must be int, got 'sixteen'"):
        C.load_config("sft_tiny_cpu", ["lora.r=sixteen"])
    with pytest.raises(C.ConfigError, match=r"not of the form section.field=value"):
        C.load_config("sft_tiny_cpu", ["max_steps"])
    with pytest.raises(C.ConfigError, match=r"unknown GRPO data source 'pubmedqa'.*pubmedqa_artificial"):
        C.load_config("grpo_tiny_cpu", ["data.sources=[gsm8k, pubmedqa]"])
    with pytest.raises(C.ConfigError, match=r"config file 'sft_tiny' not found \(did you mean 'sft_tiny_cpu'\?\)"):
        C.load_config("sft_tiny")
    # transformers 5 dropped warmup_ratio: a config copied from the old tutorial is told what to write instead
    with pytest.raises(C.ConfigError, match=r"'warmup_ratio'.*did you mean"):
        C.load_config("grpo_tiny_cpu", ["training.warmup_ratio=0.1"])


def test_each_section_is_a_documented_dataclass_whose_types_are_the_checks():
    """One field, one docstring: every field of every medbench-owned section says what it is, and the field's
    type is what a YAML value is checked against (a float field takes a YAML int; null only where allowed)."""
    import ast
    import dataclasses

    tree = ast.parse(Path(C.__file__).read_text())
    sections = [C.ModelSection, C.LoraSection, C.SftData, C.GrpoData, C.OutputSection, C.EvalSection,
                C.ProvenanceSection, C.WarmupSection]
    for cls in sections:
        (node,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == cls.__name__]
        documented = {a.target.id for a, d in zip(node.body, node.body[1:])
                      if isinstance(a, ast.AnnAssign) and isinstance(d, ast.Expr) and isinstance(d.value, ast.Constant)}
        fields = {f.name for f in dataclasses.fields(cls)}
        assert fields == documented, f"{cls.__name__}: fields without a docstring: {sorted(fields - documented)}"
    cfg = C.load_config("grpo_tiny_cpu", ["model.gpu_memory_utilization=1", "data.limit_per_source=null"])
    assert (cfg.model.gpu_memory_utilization, cfg.data.limit_per_source) == (1, None)
    with pytest.raises(C.ConfigError, match=r"model.gpu_memory_utilization must be float or int, got 'high'"):
        C.load_config("grpo_tiny_cpu", ["model.gpu_memory_utilization=high"])
    with pytest.raises(C.ConfigError, match=r"lora.r must be int, got True"):
        C.load_config("grpo_tiny_cpu", ["lora.r=true"])
    with pytest.raises(C.ConfigError, match=r"data.max_prompt_tokens must be int, got None"):
        C.load_config("grpo_tiny_cpu", ["data.max_prompt_tokens=null"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.name = "elsewhere"  # a validated config changes only through dataclasses.replace


def test_overrides_apply_with_yaml_types():
    cfg = C.load_config("grpo_tiny_cpu", ["training.max_steps=7", "training.learning_rate=1e-4",
                                          "data.limit_per_source=3"])
    assert cfg.training["max_steps"] == 7 and cfg.training["learning_rate"] == 1e-4
    assert cfg.data.limit_per_source == 3
    assert cfg.sha256() != C.load_config("grpo_tiny_cpu").sha256()


# ---------------------------------------------------------------------------------------------------------
# backends
# ---------------------------------------------------------------------------------------------------------


def test_backend_without_gpu_is_trl_with_a_message_that_says_why():
    choice = select_backend("auto", cuda=False, unsloth=True)
    assert choice.name == "trl"
    assert "no CUDA GPU" in choice.message and "adamw_torch" in choice.message
    # asking for unsloth explicitly on a CPU gets the same clear message and the trl backend
    assert select_backend("unsloth", cuda=False, unsloth=False).name == "trl"
    no_unsloth = select_backend("auto", cuda=True, unsloth=False)
    assert no_unsloth.name == "trl" and "pip install 'medbench[unsloth]'" in no_unsloth.message


def test_backend_with_gpu_and_unsloth_is_unsloth():
    choice = select_backend("auto", cuda=True, unsloth=True)
    assert choice == BackendChoice("unsloth", "auto", True)
    assert select_backend("trl", cuda=True, unsloth=True).name == "trl"
    with pytest.raises(BackendError, match="did you mean 'unsloth'"):
        select_backend("unslot")


def test_backend_on_this_machine_is_trl_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert select_backend("auto").name == "trl"


def test_trl_on_cpu_swaps_the_8bit_optimizer_and_records_it():
    cfg = C.load_config("sft_r1_llama8b_medical")
    adjustments: list[Adjustment] = []
    kw = training_kwargs(cfg, BackendChoice("trl", "auto", cuda=False), adjustments)
    assert kw["optim"] == "adamw_torch" and kw["bf16"] is False and kw["fp16"] is False
    assert kw["output_dir"] == "outputs/sft_r1_llama8b_medical"
    assert [(a.field, a.recipe_value, a.used_value) for a in adjustments] == [
        ("training.optim", "adamw_8bit", "adamw_torch")]
    # the recipe's own values pass through untouched
    assert (kw["learning_rate"], kw["max_steps"], kw["seed"]) == (2e-4, 60, 3407)


@pytest.mark.parametrize("backend", ["trl", "unsloth"])
def test_grpo_fast_inference_generates_through_vllm_on_both_backends(backend, monkeypatch):
    """The recipe's fast_inference on a GPU with vLLM: Unsloth's engine, or TRL's vLLM in colocate mode at the
    config's memory share; the GRPOConfig fields are TRL 1.15's own names, so TRL would refuse a typo."""
    from medbench.trainers import backends
    from trl import GRPOConfig

    monkeypatch.setattr(backends, "is_installed", lambda module: True)
    cfg = C.load_config("grpo_qwen25_3b_medical")
    kw = training_kwargs(cfg, BackendChoice(backend, "auto", cuda=True), [])
    assert kw["use_vllm"] is True
    if backend == "trl":
        assert (kw["vllm_mode"], kw["vllm_gpu_memory_utilization"], kw["vllm_max_model_length"]) == (
            "colocate", 0.5, 2048)
    else:
        assert "vllm_mode" not in kw  # Unsloth's own engine (FastLanguageModel fast_inference)
    names = {f.name for f in __import__("dataclasses").fields(GRPOConfig)}
    assert {k for k in kw if k.startswith("vllm") or k == "use_vllm"} <= names


def test_grpo_fast_inference_without_vllm_is_recorded_and_generation_stays_on_transformers(monkeypatch):
    from medbench.trainers import backends

    monkeypatch.setattr(backends, "is_installed", lambda module: module != "vllm")
    cfg = C.load_config("grpo_qwen25_3b_medical")
    kw = training_kwargs(cfg, BackendChoice("trl", "auto", cuda=True), [])
    assert "use_vllm" not in kw


def test_cpu_loss_stand_in_matches_log_softmax():
    import torch
    from medbench.trainers.cpu_compat import TorchChunkedLogProb

    torch.manual_seed(0)
    hidden, weight, targets = torch.randn(5, 8), torch.randn(11, 8), torch.tensor([0, 3, 10, 2, 2])
    logp, entropy, _, mean, top1 = TorchChunkedLogProb.apply(hidden, weight, None, targets, 1.0, 4096)
    ref = torch.log_softmax(hidden @ weight.T, -1)
    assert torch.allclose(logp, ref.gather(-1, targets[:, None]).squeeze(-1), atol=1e-5)
    assert torch.allclose(entropy, -(ref.exp() * ref).sum(-1), atol=1e-5)
    assert torch.equal(top1, (hidden @ weight.T).argmax(-1) == targets)
    assert torch.allclose(mean, (hidden @ weight.T).mean(-1), atol=1e-5)


# ---------------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """The bundled sample data, copied so a test can plant rows in it."""
    root = tmp_path / "data"
    shutil.copytree(SAMPLE_DATA_DIR, root)
    return root


def _grpo_data(data_dir: Path, **extra):
    cfg = C.load_config("grpo_tiny_cpu", [f"data.data_dir={data_dir}"])
    return dataclasses.replace(cfg.data, **extra)


def _tokenizer(tiny_model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_model_dir)


def test_sft_rows_use_the_recipe_template_with_eos(data_dir):
    from medbench.trainers.data import prepare_sft

    data = C.load_config("sft_tiny_cpu", [f"data.data_dir={data_dir}", "data.split=train[0:2]"]).data
    prepared = prepare_sft(data, eos_token="<EOS>")
    rows = json.loads((data_dir / "medical_o1" / "medical_o1_sft.json").read_text())
    assert len(prepared.dataset) == 2
    first = prepared.dataset[0]["text"]
    assert first == prompts.sft_training_text(rows[0]["Question"], rows[0]["Complex_CoT"], rows[0]["Response"],
                                              "<EOS>")
    assert first.endswith(rows[0]["Response"] + "<EOS>") and "<think>\n" + rows[0]["Complex_CoT"] in first
    assert prepared.sources[0]["split"] == "train[0:2]" and prepared.sources[0]["n_rows"] == 2
    assert prepared.sha256 == prepare_sft(data, eos_token="<EOS>").sha256


def test_sft_row_without_a_field_names_file_row_and_fields(data_dir):
    from medbench.tasks.loaders import DataError
    from medbench.trainers.data import prepare_sft

    path = data_dir / "medical_o1" / "medical_o1_sft.json"
    rows = json.loads(path.read_text())
    del rows[1]["Complex_CoT"]
    path.write_text(json.dumps(rows))
    data = C.load_config("sft_tiny_cpu", [f"data.data_dir={data_dir}"]).data
    with pytest.raises(DataError, match=r"medical_o1_sft.json, row 1: missing field\(s\) 'Complex_CoT'.*expected"):
        prepare_sft(data, eos_token="<EOS>")


def test_grpo_data_concatenates_filters_and_labels_every_source(data_dir, tiny_model_dir):
    from medbench.tasks.splits import health_split
    from medbench.trainers.data import prepare_grpo

    prepared = prepare_grpo(_grpo_data(data_dir), _tokenizer(tiny_model_dir))
    ds = prepared.dataset
    assert set(ds.column_names) == {"prompt", "answer", "answer_type", "source", "question"}
    by_source = {s["config"] if "config" in s else s["dataset"]: s for s in prepared.sources}
    # PQA-A: the two fixture records whose contexts are 1024+ characters are filtered out, and counted
    assert by_source["pqa_artificial"]["removed_by_filter"] == 2 and by_source["pqa_artificial"]["n_rows"] == 46
    # Health_Benchmarks: only the train side of the fixed hash split
    health = [r for r in ds if r["source"] == "health_benchmarks"]
    assert health and all(health_split(r["question"]) == "train" for r in health)
    assert by_source["yesilhealth/Health_Benchmarks"]["removed_by_filter"] == 36 - len(health)
    types = {r["source"]: r["answer_type"] for r in ds}
    assert types == {"gsm8k": "number", "pubmedqa_artificial": "yesno", "health_benchmarks": "choice"}
    for r in ds:
        assert r["prompt"][0] == {"role": "system", "content": prompts.SYSTEM_PROMPT}
        assert r["prompt"][1]["role"] == "user"
    gsm = {r["question"]: r["answer"] for r in ds if r["source"] == "gsm8k"}
    assert gsm["A clinic sees 1,200 patients a month. A quarter of them are children. How many adults does it "
               "see?"] == "900"
    assert {r["answer"] for r in health} <= set("ABCD")
    # shuffled, not in source order, and the same every time
    assert [r["source"] for r in ds] != sorted((r["source"] for r in ds), key=["gsm8k", "pubmedqa_artificial",
                                                                                "health_benchmarks"].index)
    assert prepare_grpo(_grpo_data(data_dir), _tokenizer(tiny_model_dir)).sha256 == prepared.sha256


def test_grpo_prompts_over_the_token_limit_are_dropped_and_counted(data_dir, tiny_model_dir):
    from medbench.trainers.data import prepare_grpo

    full = prepare_grpo(_grpo_data(data_dir), _tokenizer(tiny_model_dir))
    lengths = sorted(len(_tokenizer(tiny_model_dir).apply_chat_template(r["prompt"], add_generation_prompt=True,
                                                                         tokenize=True)["input_ids"])
                     for r in full.dataset)
    limit = lengths[len(lengths) // 2]
    cut = prepare_grpo(_grpo_data(data_dir, max_prompt_tokens=limit), _tokenizer(tiny_model_dir))
    kept = sum(n <= limit for n in lengths)
    assert len(cut.dataset) == kept < len(full.dataset)
    assert cut.notes == [(f"dropped {len(full.dataset) - kept} of {len(full.dataset)} prompts longer than {limit} "
                         "tokens (TRL 1.15 has no max_prompt_length)")]


def test_a_pqal_test_id_in_the_pqaa_training_file_is_refused(data_dir):
    from medbench.tasks.loaders import DataError, official_test_ids
    from medbench.trainers.data import grpo_rows

    path = data_dir / "pubmedqa" / "ori_pqaa.json"
    records = json.loads(path.read_text())
    records[official_test_ids()[0]] = next(iter(records.values()))
    path.write_text(json.dumps(records))
    with pytest.raises(DataError, match="a PQA-L test id in the training data"):
        grpo_rows(_grpo_data(data_dir))


def test_gsm8k_training_row_without_final_answer_is_an_error(data_dir):
    from medbench.tasks.loaders import DataError
    from medbench.trainers.data import grpo_rows

    with (data_dir / "gsm8k" / "train.jsonl").open("a") as fh:
        fh.write(json.dumps({"question": "How many?", "answer": "Three, I think."}) + "\n")
    with pytest.raises(DataError, match=r"train.jsonl, row 65 \(line\).*'####"):
        grpo_rows(_grpo_data(data_dir))


# ---------------------------------------------------------------------------------------------------------
# overlap and the Health_Benchmarks split
# ---------------------------------------------------------------------------------------------------------


def test_question_hash_ignores_case_spacing_and_punctuation():
    from medbench.trainers.overlap import question_hash

    a = "Does aspirin reduce   adenoma recurrence?"
    assert question_hash(a) == question_hash("does aspirin reduce adenoma recurrence") == question_hash(
        "DOES ASPIRIN, reduce adenoma\nrecurrence ?")
    assert question_hash(a) != question_hash("Does aspirin reduce adenoma size?")


def test_health_split_is_fixed_and_holds_out_a_fifth():
    from medbench.trainers.overlap import health_split

    questions = [f"Question number {i} about organ {i % 7}?\nA. x\nB. y\nC. z\nD. w" for i in range(2000)]
    sides = [health_split(q) for q in questions]
    assert 0.17 < sides.count("eval") / len(sides) < 0.23
    assert sides == [health_split(q) for q in questions]  # the same every time
    assert health_split(questions[0].upper()) == sides[0]  # a re-cased copy lands on the same side


def test_overlap_finds_planted_copies_and_says_where():
    from medbench.trainers.overlap import EvalQuestion, find_overlap

    train = [("mine", "What is 2 + 2?"), ("mine", "Is the sky green"), ("mine", "Unrelated question")]
    evals = {"task_a": [EvalQuestion("is the SKY green?", "doc-7")], "task_b": ["what is 2+2", "other"]}
    report = find_overlap(train, evals)
    assert not report.clean
    assert {(h.train_index, h.eval_set, h.eval_doc) for h in report.hits} == {(1, "task_a", "doc-7"),
                                                                               (0, "task_b", "0")}
    text = report.summary()
    assert "OVERLAP: 2 training question(s) of 3" in text and "task_a: 1" in text and "mine row 1" in text
    assert find_overlap([("mine", "Unrelated question")], evals).clean


def test_overlap_of_a_showcase_sample_is_labelled_not_a_leak():
    from medbench.trainers.overlap import EvalQuestion, find_overlap

    report = find_overlap([("sft", "Q one")], {"cot": [EvalQuestion("Q one", "o1-en-0", showcase=True)]})
    assert report.clean and len(report.hits) == 1
    assert "showcase sample o1-en-0 is in the training data" in report.summary()


def test_overlap_check_on_a_users_file_against_medbench_tasks(tmp_path):
    from medbench.trainers.overlap import check_file_overlap

    test_q = json.loads((SAMPLE_DATA_DIR / "gsm8k" / "test.jsonl").read_text().splitlines()[1])["question"]
    mine = tmp_path / "mine.jsonl"
    mine.write_text("\n".join(json.dumps({"prompt": q}) for q in ["A fresh question?", test_q.upper()]) + "\n")
    report = check_file_overlap(str(mine), "prompt", tasks=["medbench_gsm8k"], data_dir=str(SAMPLE_DATA_DIR))
    assert [(h.train_index, h.eval_set) for h in report.hits] == [(1, "medbench_gsm8k")]
    from medbench.tasks.loaders import DataError

    with pytest.raises(DataError, match=r"mine.jsonl, row 1 \(line\): no question text in field 'question'"):
        check_file_overlap(str(mine), tasks=["medbench_gsm8k"], data_dir=str(SAMPLE_DATA_DIR))


def test_sft_slice_vs_medical_cot_heldout_only_shares_the_showcase(data_dir):
    from medbench.trainers.overlap import check_config_overlap

    cfg = C.load_config("sft_tiny_cpu", [f"data.data_dir={data_dir}"])
    report = check_config_overlap(cfg, tasks=["medbench_medical_cot"])
    assert report.clean
    assert [h.eval_doc for h in report.hits] == ["o1-en-0"] and report.hits[0].showcase


# ---------------------------------------------------------------------------------------------------------
# provenance
# ---------------------------------------------------------------------------------------------------------


def _provenance():
    from medbench.trainers.provenance import DataSlice, Provenance

    return Provenance(role="grpo", parent="outputs/sft/merged_16bit", recipe="grpo", config={"recipe": "grpo"},
                      config_source="grpo.yaml", config_sha256="ab" * 32, backend="trl",
                      data=DataSlice(sources=[{"dataset": "openai/gsm8k", "split": "train"}], n_rows=12,
                                     sha256="cd" * 32), steps=2, versions={"trl": "1.15.0"})


def test_provenance_round_trip_and_bench_reads_it(tmp_path):
    from medbench.harness.run.checkpoints import read_provenance as bench_reads
    from medbench.trainers.provenance import PROVENANCE_FILE, read_provenance, write_provenance

    prov = _provenance()
    path = write_provenance(tmp_path, prov)
    assert path.name == PROVENANCE_FILE
    assert read_provenance(tmp_path) == prov
    seen = bench_reads(tmp_path)  # what `medbench bench` reads to label and order checkpoints
    assert (seen["role"], seen["parent"], seen["steps"]) == ("grpo", "outputs/sft/merged_16bit", 2)
    assert read_provenance(tmp_path / "elsewhere") is None


def test_corrupt_or_foreign_provenance_is_a_clear_error(tmp_path):
    from medbench.trainers.provenance import (
        PROVENANCE_FILE,
        ProvenanceError,
        read_provenance,
        write_provenance,
    )

    (tmp_path / PROVENANCE_FILE).write_text("{not json")
    with pytest.raises(ProvenanceError, match="is not valid JSON"):
        read_provenance(tmp_path)
    (tmp_path / PROVENANCE_FILE).write_text(json.dumps({**_provenance().to_dict(), "schema_version": 99}))
    with pytest.raises(ProvenanceError, match="schema_version 99"):
        read_provenance(tmp_path)
    bad = _provenance()
    bad.role = "teacher"
    with pytest.raises(ProvenanceError, match="role must be one of"):
        write_provenance(tmp_path, bad)


# ---------------------------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------------------------


def test_train_command_help_and_recipe_mismatch(capsys):
    from medbench.harness.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = capsys.readouterr().out
    for line in ("sft ", "grpo ", "overlap "):
        assert line in help_text
    assert main(["train", "sft", "--config", "grpo_tiny_cpu", "--backend", "trl"]) == 2
    assert "is a 'grpo' recipe; run it with `medbench train grpo`" in capsys.readouterr().err
    assert main(["train", "sft", "--config", "sft_tiny_cpu", "lora.alpah=3"]) == 2
    assert "did you mean 'alpha'" in capsys.readouterr().err


def test_grpo_data_vs_eval_tasks_is_clean_and_a_planted_copy_is_found(data_dir):
    from medbench.trainers.overlap import check_config_overlap

    tasks = ["medbench_pubmedqa", "medbench_gsm8k", "medbench_health_cardiology", "medbench_health_dermatology",
             "medbench_health_lab_medicine"]
    cfg = C.load_config("grpo_tiny_cpu", [f"data.data_dir={data_dir}"])
    assert check_config_overlap(cfg, tasks=tasks).clean  # the Health_Benchmarks hash split keeps them apart
    test_row = json.loads((data_dir / "gsm8k" / "test.jsonl").read_text().splitlines()[0])
    with (data_dir / "gsm8k" / "train.jsonl").open("a") as fh:
        fh.write(json.dumps({**test_row, "question": "  " + test_row["question"].lower()}) + "\n")
    report = check_config_overlap(cfg, tasks=tasks)
    assert [(h.train_source, h.eval_set) for h in report.leaks] == [("gsm8k", "medbench_gsm8k")]
