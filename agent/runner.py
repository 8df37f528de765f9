"""Runs of several episodes for the CLI: progress display, JSON lines, resume by run id."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable

from pydantic import BaseModel
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from agent.agent import Agent
from agent.checkpoint import RunSpec
from agent.config import Settings
from agent.episode_lines import EpisodeLines, counted
from agent.errors import ResumeError
from agent.result import EpisodeResult, StepView
from agent.tasks import TEXT_ENV_ID

EpisodeEmitter = Callable[[EpisodeResult], None]


class RunRequest(BaseModel):
    env: str | None = None
    task: str | None = None
    episodes: int = 1
    seed: int = 0
    thread_id: str | None = None
    resume: str | None = None


def episode_thread(run_id: str, index: int, episodes: int) -> str:
    """A one-episode run's thread is the run id itself; otherwise ``RUNID-i``."""
    return run_id if episodes == 1 else f"{run_id}-{index}"


def run_cli(
    settings: Settings,
    req: RunRequest,
    *,
    json_out: bool,
    err: Console,
    out: Console,
    on_run: Callable[[str], None] | None = None,
) -> list[EpisodeResult]:
    """Play (or resume) the run ``req`` asks for. ``on_run`` gets the id that resumes it
    (``evolvent run --resume ID``) once it exists, before any episode plays."""
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=False,
        disable=not err.is_terminal,
    )
    results: list[EpisodeResult] = []

    def emit(result: EpisodeResult) -> None:
        results.append(result)
        if json_out:
            # One line per episode, flushed, so a consumer sees it as soon as it ends.
            print(json.dumps(result.summary(), sort_keys=True), flush=True)

    with progress:
        loading = progress.add_task("starting the backbone and memory", total=None)
        with Agent(settings) as agent:
            progress.remove_task(loading)
            if req.resume:
                if on_run is not None:
                    on_run(req.resume)
                _resume(agent, req.resume, progress, emit)
            else:
                _start(agent, req, progress, emit, on_run)
    return results


def _start(
    agent: Agent,
    req: RunRequest,
    progress: Progress,
    emit: EpisodeEmitter,
    on_run: Callable[[str], None] | None,
) -> None:
    env_id = req.env or TEXT_ENV_ID
    run_id = req.thread_id or f"run-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:6]}"
    if agent.checkpoints.get_run(run_id) is not None:
        raise ResumeError(
            f"a run named {run_id!r} exists; resume it with `evolvent run --resume {run_id}`"
        )
    spec = RunSpec(
        env=env_id,
        seed=req.seed,
        episodes=req.episodes,
        max_steps=agent.settings.limits.max_steps,
        token_budget=agent.settings.limits.token_budget,
        task=req.task,
    )
    if env_id != TEXT_ENV_ID:
        _prepare_games(env_id, spec, agent, progress)
    agent.checkpoints.create_run(run_id, spec)
    if on_run is not None:
        on_run(run_id)
    what = "a text task" if env_id == TEXT_ENV_ID else f"{env_id} from seed {spec.seed}"
    progress.console.print(
        f"run {run_id}: {counted(spec.episodes, 'episode')}, {what}",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
    _play(agent, run_id, spec, progress, emit)


def _prepare_games(env_id: str, spec: RunSpec, agent: Agent, progress: Progress) -> None:
    from benchmarks.envs.registry import pregenerate

    seeds = list(range(spec.seed, spec.seed + spec.episodes))
    task = progress.add_task(f"preparing {env_id} games", total=len(seeds))
    for s in seeds:
        pregenerate(env_id, [s], agent.settings.games_path)
        progress.advance(task)
    progress.remove_task(task)


def _resume(agent: Agent, run_or_thread: str, progress: Progress, emit: EpisodeEmitter) -> None:
    spec = agent.checkpoints.get_run(run_or_thread)
    if spec is None:
        # Not a run id: an episode thread (e.g. from --json output).
        bar = progress.add_task(f"resuming {run_or_thread}", total=None)
        result = agent.resume(run_or_thread, on_step=lambda s: progress.advance(bar))
        EpisodeLines(progress.console, 1).finished(run_or_thread, result)
        emit(result)
        return
    _play(agent, run_or_thread, spec, progress, emit)


def _play(
    agent: Agent, run_id: str, spec: RunSpec, progress: Progress, emit: EpisodeEmitter
) -> None:
    overall = progress.add_task(f"{spec.env} episodes", total=spec.episodes)
    lines = EpisodeLines(progress.console, spec.episodes)
    for i in range(spec.episodes):
        tid = episode_thread(run_id, i, spec.episodes)
        row = agent.checkpoints.episode(tid)
        bar = progress.add_task(f"  episode {i} (seed {spec.seed + i})", total=spec.max_steps)

        def advance(step: StepView, bar: TaskID = bar) -> None:
            progress.update(bar, completed=step.index + 1)

        finished_before = row is not None and row.status == "finished" and row.result is not None
        if finished_before:
            result = agent.resume(tid)  # returns its stored result
        elif row is not None and agent.has_checkpoint(tid):
            result = agent.resume(tid, on_step=advance)
        else:
            target = spec.task if spec.env == TEXT_ENV_ID and spec.task else spec.env
            result = agent.run(
                target,
                seed=spec.seed + i,
                thread_id=tid,
                max_steps=spec.max_steps,
                token_budget=spec.token_budget,
                on_step=advance,
                run_id=run_id,
                index=i,
            )
        progress.update(bar, completed=spec.max_steps, description=_label(i, result))
        progress.advance(overall)
        if finished_before:
            lines.counted()
        else:
            lines.finished(f"episode {i} (seed {spec.seed + i})", result)
        emit(result)


def _label(i: int, r: EpisodeResult) -> str:
    mark = "[green]won[/]" if r.success else "[red]not won[/]"
    return f"  episode {i}: {mark} score {r.score:g}/{r.max_score:g} in {r.steps} steps"
