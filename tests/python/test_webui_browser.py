"""The web chat page of `edgellm serve` in a real browser (headless Chromium driven by Selenium
through chromedriver): a streamed reply equals the API's greedy text, the stop button ends a
reply mid-stream and the server cancels the sequence, a reply holding <script>/<img onerror> is
shown as text, an API-key server makes the page ask for the key, and non-browser clients still
get the one-line answer on GET /. A screenshot of the page after a reply is saved in the build
directory (webui-screenshot.png)."""
import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
import requests

import real_models
from net_util import Server

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
SHARED = Path(os.environ.get("EDGELLM_SHARED", Path(__file__).resolve().parents[3] / "shared"))
STORIES = SHARED / "models" / "stories260K.gguf"

try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - reported by the skip below
    webdriver = None

pytestmark = [
    pytest.mark.skipif(not os.environ.get("EDGELLM_BIN"), reason="EDGELLM_BIN not set (run through ctest)"),
    pytest.mark.skipif(webdriver is None, reason="selenium not installed (pip install selenium)"),
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="Chromium and chromedriver not installed (apt-get install chromium chromium-driver)"),
]


def make_driver():
    opts = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,800", "--disable-dev-shm-usage"):
        opts.add_argument(a)
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)


@pytest.fixture(scope="module")
def smol_server():
    srv = Server(real_models.require("smollm2"), "-c", "2048")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def driver():
    d = make_driver()
    yield d
    d.quit()


def open_page(driver, srv, settings):
    driver.get(srv.url + "/")
    driver.execute_script("localStorage.clear(); sessionStorage.clear();"
                          "localStorage.setItem('edgellm.settings', arguments[0]);", json.dumps(settings))
    driver.refresh()
    WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "model").text not in ("", "…"))


def send(driver, text):
    box = driver.find_element(By.ID, "input")
    box.send_keys(text)
    driver.find_element(By.ID, "send").click()


def wait_reply_done(driver, timeout=120):
    WebDriverWait(driver, timeout).until(
        lambda d: d.find_element(By.ID, "send").is_enabled() and
        d.find_elements(By.CSS_SELECTOR, ".msg.assistant .stats")[-1].text != "")
    return driver.find_elements(By.CSS_SELECTOR, ".msg.assistant")[-1]


def stored_conversation(driver):
    convs = json.loads(driver.execute_script("return localStorage.getItem('edgellm.convs')"))
    cur = json.loads(driver.execute_script("return localStorage.getItem('edgellm.current')"))
    return next(c for c in convs if c["id"] == cur)


def visible_words(text):
    """Text as the page shows it once Markdown markers are rendered away: list markers, *, `, #."""
    text = re.sub(r"(?m)^\s*([-*+]|\d+[.)])\s+", "", text)
    return re.sub(r"[\s*`#_]+", " ", text).strip()


def test_streamed_reply_equals_the_api_greedy_text(smol_server, driver):
    settings = {"temperature": 0, "top_p": 1, "top_k": 0, "max_tokens": 48, "seed": ""}
    open_page(driver, smol_server, settings)
    question = "What is the capital of France? Answer in one sentence."
    send(driver, question)
    view = wait_reply_done(driver)

    api = requests.post(smol_server.url + "/v1/chat/completions", timeout=120, json={
        "messages": [{"role": "user", "content": question}], "temperature": 0, "top_p": 1, "max_tokens": 48,
    }).json()
    expected = api["choices"][0]["message"]["content"]
    assert expected.strip(), api
    conv = stored_conversation(driver)
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]
    assert conv["messages"][1]["content"] == expected
    assert visible_words(view.find_element(By.CSS_SELECTOR, ".content").text) == visible_words(expected)
    stats = conv["messages"][1]["stats"]
    assert stats["tokens"] == api["usage"]["completion_tokens"]
    assert stats["finish"] == api["choices"][0]["finish_reason"]
    assert stats["ttft_ms"] is not None and stats["ttft_ms"] > 0
    assert "tok/s" in view.find_element(By.CSS_SELECTOR, ".stats").text
    # The conversation list shows the new conversation, titled by the question.
    assert question[:20] in driver.find_element(By.ID, "conv-list").text
    # The live metrics panel has read /metrics (it polls every 2 s).
    WebDriverWait(driver, 10).until(lambda d: "/" in d.find_element(By.ID, "m-kv").text)

    out = Path(os.environ.get("EDGELLM_BUILD_DIR", "/tmp")) / "webui-screenshot.png"
    driver.save_screenshot(str(out))
    assert out.stat().st_size > 10_000
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe  # no script error, no load blocked by the page's CSP


def test_stop_button_ends_the_reply_and_the_server_cancels_it(smol_server, driver):
    open_page(driver, smol_server, {"temperature": 0, "top_p": 1, "top_k": 0, "max_tokens": 1500, "seed": ""})
    before = smol_server.metrics()["edgellm_requests_cancelled_total"]
    send(driver, "Write a very long story about a dragon who learns to bake bread.")
    WebDriverWait(driver, 60).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, ".msg.assistant .content")[-1].text) > 20)
    driver.find_element(By.ID, "stop").click()
    view = wait_reply_done(driver, timeout=30)
    assert "stopped by you" in view.find_element(By.CSS_SELECTOR, ".stats").text
    reply = stored_conversation(driver)["messages"][1]
    assert reply["content"].strip() and reply["stats"]["finish"] == "stopped"
    assert reply["stats"]["tokens"] < 1500
    # The server noticed the closed stream and freed the sequence.
    deadline = time.time() + 20
    while smol_server.metrics()["edgellm_requests_cancelled_total"] <= before and time.time() < deadline:
        time.sleep(0.1)
    assert smol_server.metrics()["edgellm_requests_cancelled_total"] == before + 1
    smol_server.wait_idle()


def test_a_reply_with_html_is_shown_as_text(smol_server, driver):
    open_page(driver, smol_server, {"temperature": 0, "top_p": 1, "top_k": 0, "max_tokens": 8, "seed": ""})
    evil = ('Here: <script>window.__pwned=1</script> <img src=x onerror="window.__pwned=2"> '
            '[click](javascript:window.__pwned=3) **bold** `a<b>`\n```html\n<b>hi</b>\n```\n- <i>item</i>')
    # The model would not write this on request, so this one reply comes from a stand-in for
    # fetch that streams it in the server's own chunk format; everything after fetch is the page's.
    driver.execute_script("""
        const evil = arguments[0], orig = window.fetch;
        window.fetch = async (url, opts) => {
          if (!String(url).includes('/v1/chat/completions')) return orig(url, opts);
          const chunks = [{choices: [{index: 0, delta: {content: evil.slice(0, 20)}}]},
                          {choices: [{index: 0, delta: {content: evil.slice(20)}}]},
                          {choices: [{index: 0, delta: {}, finish_reason: 'stop'}]}];
          const body = chunks.map(c => 'data: ' + JSON.stringify(c) + '\\n\\n').join('') + 'data: [DONE]\\n\\n';
          return new Response(body, {status: 200, headers: {'Content-Type': 'text/event-stream'}});
        };""", evil)
    send(driver, "show me some html")
    view = wait_reply_done(driver)
    content = view.find_element(By.CSS_SELECTOR, ".content")
    assert driver.execute_script("return window.__pwned") is None
    for tag in ("script", "img", "b", "i"):
        assert content.find_elements(By.TAG_NAME, tag) == [], tag
    text = content.text
    assert "<script>window.__pwned=1</script>" in text and '<img src=x onerror="window.__pwned=2">' in text
    assert content.find_element(By.TAG_NAME, "strong").text == "bold"
    assert content.find_element(By.CSS_SELECTOR, "pre code").text == "<b>hi</b>"
    assert content.find_element(By.TAG_NAME, "li").text == "<i>item</i>"
    assert all(not (a.get_attribute("href") or "").startswith("javascript") for a in content.find_elements(By.TAG_NAME, "a"))


def need_stories():
    if not STORIES.exists():
        pytest.skip(f"{STORIES} missing (the shared test models)")


def test_api_key_server_asks_for_the_key(tmp_path):
    need_stories()
    srv = Server(STORIES, "--api-key", "s3cret")
    d = make_driver()
    try:
        d.get(srv.url + "/")
        WebDriverWait(d, 20).until(lambda d: d.find_element(By.ID, "key-dialog").get_attribute("open") is not None)
        d.find_element(By.ID, "key-input").send_keys("s3cret")
        d.find_element(By.CSS_SELECTOR, "#key-form button[value=ok]").click()
        WebDriverWait(d, 20).until(lambda d: d.find_element(By.ID, "model").text == "stories260K")
        d.execute_script("localStorage.setItem('edgellm.settings', JSON.stringify({temperature: 0, max_tokens: 16}))")
        d.refresh()  # the key stays for the tab (sessionStorage), so no dialog this time
        WebDriverWait(d, 20).until(lambda d: d.find_element(By.ID, "model").text == "stories260K")
        send(d, "Once upon a time")
        view = wait_reply_done(d)
        assert view.find_element(By.CSS_SELECTOR, ".error").text == ""
        assert view.find_element(By.CSS_SELECTOR, ".content").text.strip()
    finally:
        d.quit()
        srv.stop()


def test_non_browsers_and_no_webui_get_the_plain_answer():
    need_stories()
    srv = Server(STORIES)
    try:
        assert requests.get(srv.url + "/", timeout=10).text == "edgellm is running (Ollama and OpenAI APIs)"
        page = requests.get(srv.url + "/", headers={"Accept": "text/html"}, timeout=10)
        assert page.headers["Content-Type"].startswith("text/html")
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        assert '<script src="/webui.js">' in page.text and "<script>" not in page.text
    finally:
        srv.stop()
    srv = Server(STORIES, "--no-webui")
    try:
        r = requests.get(srv.url + "/", headers={"Accept": "text/html"}, timeout=10)
        assert r.text == "edgellm is running (Ollama and OpenAI APIs)"
        assert requests.get(srv.url + "/webui.js", timeout=10).status_code == 404
        assert "chat page" not in srv.output()
    finally:
        srv.stop()
