"""Drive a real headless Chromium over the Chrome DevTools Protocol (CDP), for the report's browser test and
the report scale benchmark.

Why CDP and not ``--dump-dom``: the test must *interact* (change a filter, read the count), collect console
errors, CSP violations and uncaught exceptions, and notice a JavaScript dialog (``alert``) if one ever opened.

    with Chromium() as browser:
        browser.open(Path("report.html"))
        browser.evaluate("window.medbenchReport.matching()")
        browser.problems            # console errors, exceptions, CSP violations, dialogs
        browser.screenshot(Path("artifacts/report.png"))
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--remote-debugging-port=0", "--remote-allow-origins=*",
)


def chromium_binary() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CDPError(RuntimeError):
    pass


class Chromium:
    """A headless Chromium process and a CDP session on its first page. Use as a context manager."""

    def __init__(self, width: int = 1400, height: int = 1800, timeout: float = 60.0) -> None:
        self.width, self.height, self.timeout = width, height, timeout
        self.problems: list[str] = []
        self.dialogs: list[str] = []
        self._ids = itertools.count(1)
        self._events: list[dict[str, Any]] = []

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def __enter__(self) -> Self:
        import websocket  # websocket-client (the `dev` extra)

        binary = chromium_binary()
        if binary is None:
            raise CDPError("no chromium binary on PATH (apt-get install -y chromium)")
        self._profile = tempfile.mkdtemp(prefix="medbench-chromium-")
        self.proc = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile}",
             f"--window-size={self.width},{self.height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise CDPError("chromium did not start its DevTools endpoint")
            time.sleep(0.05)
        port = int(port_file.read_text().split()[0])
        page = None
        while page is None:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=5) as resp:
                targets = json.load(resp)
            page = next((t for t in targets if t.get("type") == "page"), None)
            if page is None:
                if time.monotonic() > deadline:
                    self.close()
                    raise CDPError("chromium opened no page target")
                time.sleep(0.05)
        self.ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=self.timeout,
                                              suppress_origin=True)
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            with contextlib.suppress(Exception):  # best effort on shutdown
                ws.close()
        proc = getattr(self, "proc", None)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        shutil.rmtree(getattr(self, "_profile", ""), ignore_errors=True)

    # -- protocol ----------------------------------------------------------------------------------------------
    def _record(self, msg: dict[str, Any]) -> None:
        method, params = msg.get("method"), msg.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.problems.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            desc = details.get("exception", {}).get("description") or details.get("text")
            self.problems.append(f"uncaught exception: {desc}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.problems.append(f"log error ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}")
        elif method == "Page.javascriptDialogOpening":
            self.dialogs.append(params.get("message", ""))
            self.problems.append(f"a JavaScript dialog opened: {params.get('message')!r}")
            self._send("Page.handleJavaScriptDialog", accept=True)
        self._events.append(msg)

    def _send(self, method: str, **params: Any) -> int:
        msg_id = next(self._ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        return msg_id

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = self._send(method, **params)
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise CDPError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self._record(msg)

    def wait_event(self, method: str, timeout: float | None = None) -> dict[str, Any]:
        for i, msg in enumerate(self._events):
            if msg.get("method") == method:
                return self._events.pop(i)
        deadline = time.monotonic() + (timeout or self.timeout)
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            self._record(msg)
            if msg.get("method") == method:
                self._events.remove(msg)
                return msg
        raise CDPError(f"timed out waiting for {method}")

    # -- convenience -------------------------------------------------------------------------------------------
    def open(self, path: Path, ready_expression: str = "document.documentElement.dataset.ready === '1'") -> float:
        """Navigate to a local file and wait until ``ready_expression`` is true; returns seconds taken."""
        start = time.perf_counter()
        self._events.clear()
        self.call("Page.navigate", url=Path(path).resolve().as_uri())
        self.wait_event("Page.loadEventFired")
        self.wait_until(ready_expression)
        return time.perf_counter() - start

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise CDPError(f"evaluating {expression!r} failed: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def wait_until(self, expression: str, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.timeout)
        while not self.evaluate(f"Boolean({expression})"):
            if time.monotonic() > deadline:
                raise CDPError(f"timed out waiting for {expression}")
            time.sleep(0.05)

    def set_value(self, element_id: str, value: str, event: str = "change") -> None:
        """Set a form control's value and fire the event a person's interaction would fire."""
        self.evaluate(
            f"(() => {{ const e = document.getElementById({json.dumps(element_id)}); "
            f"e.value = {json.dumps(value)}; e.dispatchEvent(new Event({json.dumps(event)}, {{bubbles: true}})); }})()"
        )

    def screenshot(self, out: Path, *, full_page: bool = False) -> Path:
        params: dict[str, Any] = {"format": "png"}
        if full_page:
            params["captureBeyondViewport"] = True
            size = self.call("Page.getLayoutMetrics")["cssContentSize"]
            params["clip"] = {"x": 0, "y": 0, "width": size["width"], "height": min(size["height"], 12000),
                              "scale": 1}
        data = self.call("Page.captureScreenshot", **params)["data"]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(base64.b64decode(data))
        return out
