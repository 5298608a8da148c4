"""`seqforge chat --web`: a registered chatbot version in the browser.

One page, nothing fetched from the network: it keeps the conversation, sends its last turns with each message to
`POST /reply` (the window the terminal chat sends), shows the reply, or, for a message the model refuses, the
API's own 400 message (the version's `predict` checks it, with the same limits and words as `/invocations`), and
drops that message from the conversation. A reset starts over; the header names the version that answers.
"""

from __future__ import annotations

import html

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from mlflow.exceptions import MlflowException
from starlette.concurrency import run_in_threadpool

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>seqforge chat: {{label}}</title>
<style>
  body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
  header { display: flex; justify-content: space-between; align-items: baseline; border-bottom: 1px solid #ddd; }
  h1 { font-size: 1.3rem; }
  #log { min-height: 20rem; padding: 1rem 0; display: flex; flex-direction: column; }
  .turn { margin: .3rem 0; padding: .5rem .8rem; border-radius: .6rem; max-width: 80%; white-space: pre-wrap;
          overflow-wrap: anywhere; }
  .you { background: #e8f0fe; align-self: flex-end; }
  .bot { background: #f1f3f4; align-self: flex-start; }
  .error { background: #fdecea; color: #a50e0e; align-self: center; }
  .refused { opacity: .5; text-decoration: line-through; }
  form { display: flex; gap: .5rem; }
  input { flex: 1; padding: .6rem; font-size: 1rem; }
  button { padding: .6rem 1rem; font-size: 1rem; }
</style>
</head>
<body>
<header><h1>seqforge chat</h1><span id="version">{{label}}</span></header>
<div id="log" aria-live="polite"></div>
<form id="send">
  <input id="message" autocomplete="off" placeholder="Say something" aria-label="your message" autofocus>
  <button type="submit">Send</button>
  <button type="button" id="reset">Reset</button>
</form>
<script>
const WINDOW = {{window}};
let conversation = [], generation = 0;  // a reset starts a new generation: a late reply to the old one is dropped
const log = document.getElementById("log"), input = document.getElementById("message");
function show(text, who) {
  const turn = document.createElement("div");
  turn.className = "turn " + who;
  turn.textContent = text;
  log.appendChild(turn);
  turn.scrollIntoView();
  return turn;
}
document.getElementById("send").addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = input.value.trim();
  if (!text) return;
  input.value = "";
  input.disabled = true;
  const mine = show(text, "you"), asked = generation;
  try {
    const response = await fetch("reply", {
      method: "POST",
      headers: {"Content-Type": "application/json"},
      body: JSON.stringify({conversation: conversation.concat([text]).slice(-WINDOW)}),
      signal: AbortSignal.timeout(120000),
    });
    const answer = await response.json().catch(() => ({message: "HTTP " + response.status}));
    if (asked === generation && response.ok) {  // not reset while it was on its way
      conversation.push(text, answer.reply);
      show(answer.reply, "bot");
    } else if (asked === generation) {
      mine.classList.add("refused");  // not part of the conversation
      show(answer.message, "error");
    }
  } catch (err) {
    mine.classList.add("refused");
    show("no answer from the server: " + err, "error");
  }
  input.disabled = false;
  input.focus();
});
document.getElementById("reset").addEventListener("click", () => {
  conversation = [];
  generation += 1;
  log.replaceChildren();
  input.focus();
});
</script>
</body>
</html>
"""


def chat_app(pyfunc, label: str, window: int) -> FastAPI:
    """The page and its `/reply` for a loaded chatbot pyfunc, `label` naming the version, `window` the turns sent."""
    api = FastAPI(title=f"seqforge chat: {label}", docs_url=None, redoc_url=None)
    page = PAGE.replace("{{label}}", html.escape(label)).replace("{{window}}", str(window))

    @api.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @api.get("/health")
    def health() -> dict[str, str]:
        return {"model": label}

    @api.post("/reply")
    async def reply(request: Request) -> JSONResponse:
        """`{"conversation": [turn, ...]}` (newest last) -> `{"reply": ...}`, or 400 `{"message": ...}`."""
        try:
            turns = (await request.json())["conversation"]
        except (ValueError, KeyError, TypeError):
            return JSONResponse({"message": 'expected a JSON object {"conversation": [turn, ...]}'}, status_code=400)
        try:
            answer = await run_in_threadpool(pyfunc.predict, pd.DataFrame({"conversation": [turns]}))
        except MlflowException as err:  # the request's fault: the API's 400 and its words
            return JSONResponse({"message": err.message}, status_code=400)
        except (RuntimeError, ValueError, MemoryError) as err:  # as `seqforge chat` reports it
            message = f"the model failed on this input: {type(err).__name__}: {err}"
            return JSONResponse({"message": message}, status_code=500)
        return JSONResponse({"reply": str(answer["reply"][0])})

    return api
