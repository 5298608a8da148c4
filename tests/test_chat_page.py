"""`seqforge chat --web`: the smoke chatbot's chat page driven in headless Chromium (Debian's chromium and
chromium-driver, as the MLflow UI test): two turns typed, two replies read, each the reply the API gives for the
same conversation; a message the model refuses shows the API's own 400 message and is not kept; a reset empties
the page. The screenshot goes to test-artifacts/chat-page.png."""

from __future__ import annotations

import json
import urllib.request

import pytest

from helpers import free_port, start_server, stop_server
from test_tracking_server import SCREENSHOTS, chromium, wait_for_text

pytestmark = pytest.mark.slow

MODEL = "chatbot-dailydialog@challenger"
TURNS = ["Hi, how are you?", "What do you do for a living?"]


def reply(url: str, conversation: list[str]) -> tuple[int, dict]:
    """What `POST /reply` answers for `conversation`: the status and the JSON body."""
    request = urllib.request.Request(
        f"{url}reply", data=json.dumps({"conversation": conversation}).encode(), method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as err:
        return err.code, json.load(err)


def test_the_chat_page_holds_a_conversation_in_chromium(smoke_repo, tmp_path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    repo, env = smoke_repo
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    cmd = ["seqforge", "chat", "-m", MODEL, "--web", "--port", str(port), "--no-open"]
    proc = start_server(cmd, repo, env, f"{url}health")
    driver = chromium(tmp_path / "chromium")
    try:
        driver.get(url)
        wait_for_text(driver, MODEL, "(version ")
        box = driver.find_element(By.ID, "message")

        def say(text: str, css: str, count: int) -> list[str]:
            box.send_keys(text, Keys.ENTER)
            WebDriverWait(driver, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, css)) == count)
            return [e.text for e in driver.find_elements(By.CSS_SELECTOR, css)]

        window = driver.execute_script("return WINDOW")  # the turns the page sends: the terminal chat's window
        conversation: list[str] = []
        for i, turn in enumerate(TURNS, 1):
            expected = reply(url, [*conversation, turn][-window:])  # what the API gives for what the page sends
            assert expected[0] == 200 and say(turn, ".bot", i)[-1] == expected[1]["reply"] != ""
            conversation += [turn, expected[1]["reply"]]

        status, refused = reply(url, [*conversation, "x" * 1001][-window:])
        assert status == 400 and "1001 characters, more than the limit of 1000" in refused["message"]
        assert say("x" * 1001, ".error", 1) == [refused["message"]]
        SCREENSHOTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(SCREENSHOTS / "chat-page.png"))
        again = reply(url, [*conversation, TURNS[0]][-window:])[1]["reply"]  # the refused message not in the context
        assert say(TURNS[0], ".bot", 3)[-1] == again

        driver.find_element(By.ID, "reset").click()
        assert driver.find_elements(By.CSS_SELECTOR, ".turn") == []
    finally:
        driver.quit()
        stop_server(proc)
