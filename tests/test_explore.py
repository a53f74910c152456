"""`make explore` (scripts/explore.py, plumbing/explore.py): the questions and their checks, the server over HTTP,
and the page itself in a real headless Chromium (Debian's chromium + chromedriver, driven by selenium)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch

from eval.attribution import word_spans
from plumbing.explore import MAX_TEXT_CHARS, BadRequest, Explorer, StepView
from processes import SAFETY_S

REPO = Path(__file__).resolve().parents[1]
PASSAGE = ("Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing to do: "
           "once or twice she had peeped into the book her sister was reading.")


@pytest.fixture(scope="module")
def explore_runs(tmp_path_factory, make_tiny_judge) -> Path:
    runs = tmp_path_factory.mktemp("explore") / "runs"
    judge = make_tiny_judge(runs)
    (judge / "report.html").write_text("<p>the judge's report</p>", encoding="utf-8")
    return runs


@pytest.fixture(scope="module")
def explorer(explore_runs, tiny_neo_base) -> Explorer:
    return Explorer(explore_runs, generator=str(tiny_neo_base))


def files_under(folder: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in folder.rglob("*")}


def test_the_judge_answers_probabilities_coloured_words_and_windows(explorer, explore_runs):
    before = files_under(explore_runs)
    a = explorer.judge({"text": PASSAGE})
    assert set(a["probs"]) == {"alice", "edgar"} and sum(a["probs"].values()) == pytest.approx(1.0)
    assert a["html"].count("data-score=") == len(word_spans(explorer.judge_model.tok, PASSAGE))
    assert len(a["windows"]) == 1 and abs(a["attribution_sum"] - a["logit_change"]) < 1e-3  # E1's completeness
    b = explorer.judge({"text": " ".join([PASSAGE] * 4)})  # several windows of the tiny judge's 64 tokens
    assert len(b["windows"]) > 1
    assert files_under(explore_runs) == before  # it writes nothing


def test_the_step_view_is_the_distribution_the_token_is_drawn_from(explorer):
    """With no penalty, no mask, temperature 1 and no top-k, after = before; a penalty on a repeated prompt changes
    the 'after' of the very first step (B10 counts the prompt) and not its 'before'."""
    plain = {"prompt": "the the the the", "tokens": 3, "rows": 1, "repetition_penalty": 1, "mask": False, "top_k": 0}
    a = explorer.generate(plain)
    assert len(a["steps"]) == 3 and len(a["texts"]) == 1 and set(a["texts"][0]["probs"]) == {"alice", "edgar"}
    for step in a["steps"]:
        assert [t for t, _ in step["before"]] == [t for t, _ in step["after"]]
        assert [p for _, p in step["before"]] == pytest.approx([p for _, p in step["after"]])
        assert step["p_before"] == pytest.approx(step["p_after"])
    b = explorer.generate(dict(plain, repetition_penalty=20))
    assert b["steps"][0]["before"] == a["steps"][0]["before"] and b["steps"][0]["after"] != a["steps"][0]["after"]
    top = explorer.generate(dict(plain, top_k=2))["steps"][0]["after"]
    assert sum(p for _, p in top[:2]) == pytest.approx(1.0) and top[2][1] == 0  # top-k: two candidates left


def test_the_step_view_shows_spaces_and_line_breaks():
    class Tok:
        def decode(self, ids):
            return {0: " the", 1: "\n", 2: "", 3: "\x13"}[ids[0]]

    from model.sampler import Sampling

    view = StepView(Tok(), Sampling(top_k=None, repetition_penalty=1.0))
    view.top = lambda probs: []  # only the drawn token matters here
    for token in range(4):
        view(torch.zeros(1, 4), torch.zeros(1, 4), torch.tensor([[token]]))
    assert [s["drawn"] for s in view.steps] == ["\u2423the", "\u23ce", "\u2205", "\\x13"]


@pytest.mark.parametrize("question,request_,status,words", [
    ("judge", {"text": ""}, 400, "empty"),
    ("judge", {"text": "x" * (MAX_TEXT_CHARS + 1)}, 413, "at most"),
    ("judge", {"text": 42}, 400, "must be text"),
    ("judge", {"text": "\U0001f600 \U0001f600"}, 422, "none of this text"),
    ("judge", {"text": PASSAGE, "judge": "/nowhere/at/all"}, 404, "holds no judge"),
    ("generate", {"temperature": -1}, 400, "temperature must lie between"),
    ("generate", {"temperature": "hot"}, 400, "temperature must be a number"),
    ("generate", {"tokens": 100000}, 400, "tokens must lie between"),
    ("generate", {"rows": 1.5}, 400, "whole number"),
    ("generate", {"repetition_penalty": 0.5}, 400, "repetition_penalty must lie between"),
    ("generate", {"penalty_mode": "strong"}, 400, "penalty_mode must be one of"),
    ("generate", {"mask": "no"}, 400, "mask must be true or false"),
    ("generate", {"generator": "no-such-model"}, 404, "no-such-model"),
    ("generate", {"prompt": "x " * 200, "tokens": 100}, 422, "context"),
])
def test_every_bad_request_gets_a_message_and_a_4xx_status(explorer, question, request_, status, words):
    with pytest.raises(BadRequest, match=words) as err:
        getattr(explorer, question)(request_)
    assert err.value.status == status


def test_a_folder_that_is_not_a_generator_and_a_busy_explorer(explorer, explore_runs):
    judge_run = next((explore_runs / "judge").glob("2*"))
    with pytest.raises(BadRequest, match="is not a generator") as err:
        explorer.generate({"generator": str(judge_run / "hf")})
    assert err.value.status == 422
    with explorer.busy("loading the judge somewhere"):  # what a second question meets while a model loads
        with pytest.raises(BadRequest, match="busy loading the judge somewhere") as err:
            explorer.judge({"text": PASSAGE})
    assert err.value.status == 429


def test_runs_are_listed_with_their_numbers_and_only_report_pages_are_served(explorer, explore_runs):
    runs = explorer.runs()
    assert [(r["kind"], r["report"] is not None) for r in runs] == [("judge", True)]
    kind, name = runs[0]["kind"], runs[0]["name"]
    assert explorer.report_page(kind, name).read_text(encoding="utf-8") == "<p>the judge's report</p>"
    for bad in ((kind, ".."), ("..", ".."), (kind, "nothing")):
        with pytest.raises(BadRequest) as err:
            explorer.report_page(*bad)
        assert err.value.status == 404


# ----------------------------------------------------------------------------- the server


@pytest.fixture(scope="module")
def server(explore_runs, tiny_neo_base):
    """`python -m scripts.explore --port 0` on the tiny judge and generator: (its address, its process)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "scripts.explore", "--port", "0", "--runs-dir", str(explore_runs),
                             "--generator", str(tiny_neo_base)], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    line = proc.stdout.readline()  # printed once it listens; '' if it died first
    assert line.startswith("explorer: http://127.0.0.1:"), line
    yield line.split()[1], proc
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def fetch(url: str, body: bytes | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    try:
        with urllib.request.urlopen(request, timeout=SAFETY_S) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def test_the_server_answers_the_page_and_every_bad_request_with_json(server):
    url, _ = server
    status, page = fetch(url)
    assert status == 200 and b"<script>" in page
    for external in (b"src=\"http", b"href=\"http", b"src='http", b"@import", b"url(http", b"//cdn"):
        assert external not in page  # self-contained: nothing fetched from elsewhere
    for path, body, code in (("api/nothing", None, 404), ("api/nothing", b"{}", 404), ("api/judge", b"not json", 400),
                             ("api/judge", b"[1, 2]", 400), ("api/judge", b'{"text": ""}', 400),
                             ("api/judge", json.dumps({"text": "x" * 100_000}).encode(), 413),
                             ("runs/judge/../report.html", None, 404)):
        status, answer = fetch(url + path, body)
        assert status == code and json.loads(answer)["error"], (path, status, answer)
    status, answer = fetch(url + "api/judge", json.dumps({"text": PASSAGE}).encode())
    assert status in (200, 429)  # 429 while the judge still loads: the page says so and one asks again


def test_ctrl_c_stops_the_server_with_130(explore_runs, tiny_neo_base):
    proc = subprocess.Popen([sys.executable, "-m", "scripts.explore", "--port", "0", "--runs-dir", str(explore_runs)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    assert proc.stdout.readline().startswith("explorer: http://127.0.0.1:")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=SAFETY_S)
    assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err


# ----------------------------------------------------------------------------- the page in a browser


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through chromedriver; the tests skip (and fail under ALICE_EDGAR_STRICT) without them."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    driver_path, chromium = shutil.which("chromedriver"), shutil.which("chromium") or shutil.which("chromium-browser")
    if not driver_path or not chromium:
        pytest.skip("no chromium + chromedriver here (apt-get install chromium chromium-driver; .ci/run does)")
    options = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,1400"):
        options.add_argument(arg)
    options.binary_location = chromium
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    yield driver
    driver.quit()


def wait_until(driver, state, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, SAFETY_S, poll_frequency=0.05).until(lambda d: state(d), message=f"no {what}")


def ask_on_page(driver, button: str, where: str) -> None:
    """Press a button and wait until its question is answered (the 'working…' message is gone); a 429 while the
    judge loads at start is asked again."""
    from selenium.webdriver.common.by import By

    message = driver.find_element(By.ID, f"{where}-message")
    while True:
        driver.find_element(By.ID, button).click()
        wait_until(driver, lambda d: not d.find_element(By.ID, button).get_property("disabled")
                   and "working" not in message.text, f"answer to {button}")
        if "HTTP 429" not in message.text:
            return


def test_the_page_judges_a_passage_and_colours_its_words(browser, server, minilm_folder):
    from selenium.webdriver.common.by import By

    from tokenizer_bridge.load import load_bert_tokenizer

    url, _ = server
    browser.get(url)
    browser.find_element(By.ID, "text").send_keys(PASSAGE)
    ask_on_page(browser, "judge-go", "judge")
    assert browser.find_element(By.ID, "judge-message").is_displayed() is False
    rows = browser.find_elements(By.CSS_SELECTOR, "#probs tr[data-author]")
    probs = {r.get_attribute("data-author"): float(r.get_attribute("data-p")) for r in rows}
    _, answer = fetch(url + "api/judge", json.dumps({"text": PASSAGE}).encode())
    assert probs == pytest.approx(json.loads(answer)["probs"])  # the page shows what the explorer answers
    words = browser.find_elements(By.CSS_SELECTOR, "#explained span[data-score]")
    assert [w.text for w in words][:3] == ["Alice", "was", "beginning"]
    assert len(words) == len(word_spans(load_bert_tokenizer(minilm_folder), PASSAGE))  # every word, once
    assert len({w.value_of_css_property("background-color") for w in words}) > 3  # coloured by their scores


def test_the_page_writes_and_its_step_view_follows_the_penalty(browser, server):
    from selenium.webdriver.common.by import By

    url, _ = server
    browser.get(url)
    browser.find_element(By.ID, "tab-generate").click()

    def fill(field: str, value: str) -> None:
        box = browser.find_element(By.ID, field)
        box.clear()
        box.send_keys(value)

    fill("prompt", "the the the the")
    fill("tokens", "4")
    fill("rows", "2")
    fill("repetition_penalty", "1")
    ask_on_page(browser, "generate-go", "generate")
    assert len(browser.find_elements(By.CSS_SELECTOR, "#texts .text")) == 2
    steps = browser.find_elements(By.CSS_SELECTOR, "#steps tr.step")
    assert len(steps) == 4
    first = [browser.find_element(By.CSS_SELECTOR, f"#steps tr.step div.{c}").text for c in ("before", "after")]
    fill("repetition_penalty", "20")
    ask_on_page(browser, "generate-go", "generate")
    again = [browser.find_element(By.CSS_SELECTOR, f"#steps tr.step div.{c}").text for c in ("before", "after")]
    assert again[0] == first[0] and again[1] != first[1]  # the model's own candidates stay; the drawn-from ones move


def test_the_page_shows_bad_input_as_a_message(browser, server):
    from selenium.webdriver.common.by import By

    url, _ = server
    browser.get(url)
    ask_on_page(browser, "judge-go", "judge")  # nothing pasted
    message = browser.find_element(By.ID, "judge-message")
    assert message.is_displayed() and "empty" in message.text and "HTTP 400" in message.text
    browser.find_element(By.ID, "tab-generate").click()
    box = browser.find_element(By.ID, "temperature")
    box.clear()
    box.send_keys("-1")
    ask_on_page(browser, "generate-go", "generate")
    message = browser.find_element(By.ID, "generate-message")
    assert "temperature must lie between" in message.text and "HTTP 400" in message.text
    browser.find_element(By.ID, "tab-runs").click()
    wait_until(browser, lambda d: "report page" in d.find_element(By.ID, "runs-table").text, "list of runs")
