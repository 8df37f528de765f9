"""A tiny OpenAI-compatible HTTP server for client tests: scripted replies, recorded requests."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Reply = tuple[int, dict[str, Any]]


@dataclass
class Recorded:
    method: str
    path: str
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class StubServer:
    server: ThreadingHTTPServer
    replies: deque[Reply | Callable[[Recorded], Reply]] = field(default_factory=deque)
    requests: list[Recorded] = field(default_factory=list)
    models: list[dict[str, Any]] = field(
        default_factory=lambda: [{"id": "m", "object": "model", "owned_by": "me"}]
    )
    delay_s: float = 0.0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/v1"

    @property
    def posts(self) -> list[Recorded]:
        return [r for r in self.requests if r.method == "POST"]

    def reply(self, *replies: Reply | Callable[[Recorded], Reply]) -> None:
        self.replies.extend(replies)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def text_reply(text: str, prompt_tokens: int = 7, completion_tokens: int = 2) -> Reply:
    return 200, {
        "id": "cmpl-1",
        "object": "text_completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "text": text, "finish_reason": "stop", "logprobs": None}],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def chat_reply(content: str, prompt_tokens: int = 9, completion_tokens: int = 4) -> Reply:
    return 200, {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def error_reply(status: int, message: str = "boom") -> Reply:
    return status, {"error": {"message": message, "type": "server_error", "code": status}}


def start_stub() -> StubServer:
    stub: StubServer

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Without it, header and body go out in two packets and delayed ACKs add ~40 ms.
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
            stub.requests.append(Recorded("GET", self.path, {}, dict(self.headers)))
            if self.path.rstrip("/").endswith("/models"):
                self._send(200, {"object": "list", "data": stub.models})
            else:
                self._send(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", 0))
            body = json.loads(self.rfile.read(length) or b"{}")
            rec = Recorded("POST", self.path, body, dict(self.headers))
            stub.requests.append(rec)
            if stub.delay_s:
                time.sleep(stub.delay_s)
            if not stub.replies:
                self._send(*error_reply(400, "stub: no scripted reply"))
                return
            reply = stub.replies.popleft()
            self._send(*(reply(rec) if callable(reply) else reply))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    stub = StubServer(server)
    threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True).start()
    return stub
