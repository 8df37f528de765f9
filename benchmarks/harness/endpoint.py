"""An instant, scripted OpenAI-compatible endpoint on loopback, for benchmarks and tests.

It answers ``/v1/completions`` and ``/v1/chat/completions`` at once and always validly, so the
agent's real client path (litellm over HTTP) runs with the LLM's own cost near zero:

* a choice (vLLM ``structured_outputs.choice``, a llama.cpp choice grammar, or a JSON-schema
  ``enum`` in ``response_format``) gets one of its options: picked by a hash of the prompt
  (``--pick hash``, the default: deterministic, yet different states get different actions)
  or the first one (``--pick first``);
* a JSON schema (``structured_outputs.json`` or ``response_format``) gets the smallest
  instance of the schema whose strings name their field;
* free text gets a short fixed plan.

``GET /v1/models`` says ``owned_by: vllm`` (``--kind``), so the client picks vLLM's
structured-output form. ``--delay-ms`` makes every completion take that long (a stand-in
for a real model's latency, to see what concurrency buys).

Run it with ``python -m benchmarks.harness.endpoint`` or, from Python, ``with
instant_endpoint() as base_url: ...`` (a subprocess in its own process group, stopped on
exit).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from benchmarks.harness.services import ServiceError, die_with_parent, stop_group

Pick = Literal["hash", "first"]
PLAN = "1. look around\n2. do what the task asks"
_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"')


def pick(options: Sequence[str], prompt: str, how: Pick) -> str:
    """One of ``options``: the first, or one chosen by a hash of the prompt."""
    if how == "first" or len(options) == 1:
        return options[0]
    digest = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:8], "big")
    return options[digest % len(options)]


def grammar_choices(grammar: str) -> list[str] | None:
    """The options of a choice grammar (``root ::= "a" | "b"``); None for other grammars."""
    head, sep, body = grammar.partition("::=")
    if not sep or head.strip() != "root" or "\n" in body.strip():
        return None
    parts = [p.strip() for p in body.split(" | ")]
    out: list[str] = []
    for part in parts:
        m = _LITERAL.fullmatch(part)
        if m is None:
            return None
        out.append(json.loads(f'"{m.group(1)}"'))
    return out


def instance(schema: dict[str, Any], root: dict[str, Any] | None = None, name: str = "x") -> Any:
    """The smallest value valid for ``schema`` (strings say which field they fill)."""
    root = root if root is not None else schema
    if "$ref" in schema:
        target: Any = root
        for part in str(schema["$ref"]).lstrip("#/").split("/"):
            target = target[part]
        return instance(target, root, name)
    for combo in ("anyOf", "oneOf", "allOf"):
        if schema.get(combo):
            return instance(schema[combo][0], root, name)
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props: dict[str, Any] = schema.get("properties", {})
        return {k: instance(v, root, k) for k, v in props.items()}
    if kind == "array":
        n = int(schema.get("minItems", 1))
        return [instance(schema.get("items", {}), root, name) for _ in range(n)]
    if kind == "string":
        text = f"{name.replace('_', ' ')} (instant)"
        return text.ljust(int(schema.get("minLength", 0)), "x")
    if kind in ("integer", "number"):
        return schema.get("minimum", 0)
    if kind == "boolean":
        return False
    return None


def answer(body: dict[str, Any], prompt: str, how: Pick) -> str:
    """The text of the reply to a completion or chat request ``body``."""
    structured = body.get("structured_outputs") or {}
    if structured.get("choice"):
        return pick([str(o) for o in structured["choice"]], prompt, how)
    if "json" in structured:
        return json.dumps(instance(structured["json"]))
    if isinstance(body.get("grammar"), str):
        options = grammar_choices(body["grammar"])
        if options:
            return pick(options, prompt, how)
    fmt = body.get("response_format") or {}
    schema = fmt.get("schema") or (fmt.get("json_schema") or {}).get("schema")
    if isinstance(schema, dict):
        enum = schema.get("properties", {}).get("choice", {}).get("enum")
        if enum:
            return json.dumps({"choice": pick([str(o) for o in enum], prompt, how)})
        return json.dumps(instance(schema))
    text = PLAN
    for stop in body.get("stop") or []:
        if stop and stop in text:
            text = text[: text.index(stop)]
    return text


def _usage(prompt: str, text: str) -> dict[str, int]:
    p, c = len(prompt.split()), max(1, len(text.split()))
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def make_server(
    port: int = 0, how: Pick = "hash", kind: str = "vllm", delay_s: float = 0.0
) -> ThreadingHTTPServer:
    """The endpoint on ``127.0.0.1:port`` (0: a free port); call ``serve_forever()``.
    Requests are served concurrently, each after ``delay_s`` seconds."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Header and body in one packet: no delayed-ACK stall per request.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if self.path.rstrip("/").endswith("/models"):
                model = {"id": "instant", "object": "model", "owned_by": kind}
                self._send(200, {"object": "list", "data": [model]})
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})

        def do_POST(self) -> None:
            if delay_s > 0:
                time.sleep(delay_s)
            length = int(self.headers.get("Content-Length", 0))
            body: dict[str, Any] = json.loads(self.rfile.read(length) or b"{}")
            path = self.path.rstrip("/")
            if path.endswith("/chat/completions"):
                messages = body.get("messages") or [{}]
                prompt = str(messages[-1].get("content", ""))
                text = answer(body, prompt, how)
                choice: dict[str, Any] = {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
                obj = "chat.completion"
            elif path.endswith("/completions"):
                prompt = str(body.get("prompt", ""))
                text = answer(body, prompt, how)
                choice = {"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}
                obj = "text_completion"
            else:
                self._send(404, {"error": {"message": f"no route {self.path}"}})
                return
            self._send(
                200,
                {
                    "id": "instant-1",
                    "object": obj,
                    "created": 1,
                    "model": str(body.get("model", "instant")),
                    "choices": [choice],
                    "usage": _usage(prompt, text),
                },
            )

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


@contextmanager
def instant_endpoint(
    how: Pick = "hash", kind: str = "vllm", delay_ms: float = 0.0
) -> Iterator[str]:
    """Serve the endpoint from a subprocess (its own process group); yields its base URL
    (``http://127.0.0.1:PORT/v1``) and stops it on exit."""
    cmd = [sys.executable, "-m", "benchmarks.harness.endpoint", "--pick", how, "--kind", kind]
    cmd += ["--delay-ms", str(delay_ms)]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=die_with_parent,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode().strip()
        if not line.startswith("port "):
            raise ServiceError(f"the instant endpoint did not start (exit {proc.poll()})")
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1"
    finally:
        stop_group(proc)
        if proc.stdout is not None:
            proc.stdout.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    ap.add_argument("--pick", choices=["hash", "first"], default="hash")
    ap.add_argument("--kind", default="vllm", help="owned_by in /v1/models (vllm, llamacpp)")
    ap.add_argument("--delay-ms", type=float, default=0.0, help="latency of every completion")
    args = ap.parse_args(argv)
    server = make_server(args.port, args.pick, args.kind, args.delay_ms / 1000.0)
    print(f"port {server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
