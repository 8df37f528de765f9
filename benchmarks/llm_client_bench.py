"""What the LLM client itself costs a call: the agent's real client against an endpoint that
answers at once.

    .venv/bin/python -m benchmarks.llm_client_bench
    .venv/bin/python -m benchmarks.llm_client_bench --calls 300 --options 25 --kind llamacpp --json

The client is ``agent.llm.make_client`` (litellm over HTTP, as the agent uses it) and the
endpoint the instant scripted one of ``benchmarks.harness.endpoint`` (a subprocess on
loopback), which answers every ``choose`` validly with no model behind it; ``--kind`` is what
the endpoint says it is (``vllm``: a choice list; ``llamacpp``: a GBNF grammar), which picks
the request's form. After ``--warmup`` untimed calls, ``--calls`` choices among ``--options``
actions with a cooking-sized prompt are timed. Printed: wall ms a call (what the agent's
``llm_s`` counts), and this process's CPU ms a call (the client, and litellm's logging
thread, waited for before the clock stops; the endpoint's process is not counted).
"""

from __future__ import annotations

import argparse
import json
import time

from pydantic import BaseModel
from rich.console import Console

from agent.errors import EvolventError
from benchmarks.scriptmain import run_script

PROMPT_WORDS = 400
"""About a cooking executor prompt (task, plan, history, options)."""


class ClientCost(BaseModel):
    kind: str
    calls: int
    options: int
    ms_per_call: float
    cpu_ms_per_call: float


def measure(kind: str, calls: int, options: int, warmup: int) -> ClientCost:
    from agent.config import LLMSettings
    from agent.llm.factory import make_client
    from benchmarks.harness.endpoint import instant_endpoint

    choices = [f"take item {i} from the fridge" for i in range(options)]
    with instant_endpoint(kind=kind) as url:
        client, _ = make_client(LLMSettings(base_url=url))
        try:
            for i in range(warmup):
                client.choose(f"warm up {i} " + "word " * PROMPT_WORDS, choices)
            time.sleep(0.5)  # litellm's logging thread finishes the warm-up's work
            wall, cpu = time.perf_counter(), time.process_time()
            for i in range(calls):
                client.choose(f"step {i} " + "you see a kitchen " * (PROMPT_WORDS // 4), choices)
            wall = time.perf_counter() - wall
            time.sleep(0.5)  # and the timed calls' (counted: it is the client's work)
            cpu = time.process_time() - cpu
        finally:
            client.close()
    return ClientCost(
        kind=kind,
        calls=calls,
        options=options,
        ms_per_call=round(1000 * wall / calls, 3),
        cpu_ms_per_call=round(1000 * cpu / calls, 3),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.llm_client_bench",
        description=(__doc__ or "").split("\n\n")[0],
    )
    ap.add_argument("--calls", type=int, default=300, help="timed calls (default 300)")
    ap.add_argument("--warmup", type=int, default=30, help="untimed calls first (default 30)")
    ap.add_argument("--options", type=int, default=25, help="actions offered (default 25)")
    ap.add_argument("--kind", choices=["vllm", "llamacpp"], default="vllm")
    ap.add_argument("--json", action="store_true", help="print JSON instead of a line")
    args = ap.parse_args(argv)

    def body(err: Console) -> int:
        if args.calls < 1 or args.options < 1 or args.warmup < 0:
            raise EvolventError("--calls and --options must be >= 1, --warmup >= 0")
        with err.status(f"{args.warmup} + {args.calls} calls against the instant endpoint"):
            res = measure(args.kind, args.calls, args.options, args.warmup)
        if args.json:
            print(json.dumps(res.model_dump()))
        else:
            print(
                f"{res.kind}: {res.calls} choices among {res.options} actions: "
                f"{res.ms_per_call:.2f} ms a call, {res.cpu_ms_per_call:.2f} ms of this "
                f"process's CPU a call"
            )
        return 0

    return run_script(body)


if __name__ == "__main__":
    raise SystemExit(main())
