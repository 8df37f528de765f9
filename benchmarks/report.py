"""Benchmark report: learning curves (PNG), tables (``report.md``) and ``report.json``.

Reads ``OUT/episodes.jsonl`` as written by the harness (one JSON object per episode with
``arm``, ``repeat``, ``phase``, ``index`` and the episode summary), so it works on a run that
is still going or was killed. ``python -m benchmarks.report OUT``.

Curves: per repeat, the trailing moving average (window 5) of success and normalized score
over the training stream; then the mean over repeats with a 95% band (normal approximation,
mean ± 1.96·sd/√n; no band with one repeat).
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

EPISODES_FILE = "episodes.jsonl"
PHASES = ("pre", "train", "post")
WINDOW = 5
METRICS = ("success", "normalized_score")
_Z95 = 1.96

Record = dict[str, Any]


def load_records(path: Path) -> list[Record]:
    """Records of ``episodes.jsonl`` (``path`` is the file or its directory); a line cut
    short by a kill is skipped, and a later record of the same episode wins."""
    file = path / EPISODES_FILE if path.is_dir() else path
    seen: dict[tuple[str, int, str, int], Record] = {}
    for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            r = json.loads(line)
            seen[(r["arm"], int(r["repeat"]), r["phase"], int(r["index"]))] = r
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return list(seen.values())


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def moving_average(xs: Sequence[float], window: int = WINDOW) -> list[float]:
    """Trailing mean: point i averages ``xs[max(0, i-window+1) : i+1]``."""
    return [_mean(xs[max(0, i - window + 1) : i + 1]) for i in range(len(xs))]


def band(rows: Sequence[Sequence[float]]) -> tuple[list[float], list[float], list[float]]:
    """Column-wise mean, low and high of the 95% band over rows (repeats) of equal length
    (shorter rows — a repeat still running — count where they have values)."""
    length = max((len(r) for r in rows), default=0)
    mean, lo, hi = [], [], []
    for i in range(length):
        col = [r[i] for r in rows if i < len(r)]
        m = _mean(col)
        if len(col) > 1:
            sd = math.sqrt(sum((x - m) ** 2 for x in col) / (len(col) - 1))
            half = _Z95 * sd / math.sqrt(len(col))
        else:
            half = 0.0
        mean.append(m)
        lo.append(m - half)
        hi.append(m + half)
    return mean, lo, hi


def phase_stats(records: Iterable[Record]) -> dict[str, float]:
    rs = list(records)
    return {
        "episodes": len(rs),
        "success_rate": _mean([float(bool(r["success"])) for r in rs]),
        "mean_score": _mean([float(r.get("normalized_score", 0.0)) for r in rs]),
        "mean_steps": _mean([float(r.get("steps", 0)) for r in rs]),
        "mean_tokens": _mean([float(r.get("tokens", 0)) for r in rs]),
        "total_tokens": float(sum(int(r.get("tokens", 0)) for r in rs)),
        "mean_wall_s": _mean([float(r.get("wall_s", 0.0)) for r in rs]),
        "total_wall_s": float(sum(float(r.get("wall_s", 0.0)) for r in rs)),
    }


def _curves(records: list[Record]) -> dict[str, dict[str, list[float]]]:
    per_repeat: dict[int, list[Record]] = defaultdict(list)
    for r in records:
        if r["phase"] == "train":
            per_repeat[int(r["repeat"])].append(r)
    out: dict[str, dict[str, list[float]]] = {}
    for metric in METRICS:
        rows = []
        for rep in sorted(per_repeat):
            ordered = sorted(per_repeat[rep], key=lambda r: int(r["index"]))
            rows.append(moving_average([float(r[metric]) for r in ordered]))
        mean, lo, hi = band(rows)
        out[metric] = {"mean": mean, "low": lo, "high": hi}
    return out


def _memory(records: list[Record]) -> dict[str, Any]:
    """Memories written during training (from ``memories_written`` ids, by kind prefix) and
    the final store counts (``memory_stats`` of each repeat's last record), mean over
    repeats."""
    written: dict[int, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    last: dict[int, Record] = {}
    for r in records:
        rep = int(r["repeat"])
        if r["phase"] == "train":
            for mid in r.get("memories_written", []):
                written[rep][str(mid).split("-", 1)[0]] += 1
            written[rep]["tool"] += len(r.get("tools_written", []))
        key = (PHASES.index(r["phase"]), int(r["index"]))
        if rep not in last or key > (PHASES.index(last[rep]["phase"]), int(last[rep]["index"])):
            last[rep] = r
    reps = sorted(last)
    kinds = sorted({k for w in written.values() for k in w})
    final_kinds = sorted({k for r in last.values() for k in r.get("memory_stats", {})})
    return {
        "written_in_training": {k: _mean([written[rep][k] for rep in reps]) for k in kinds},
        "final_counts": {
            k: _mean([float(last[rep].get("memory_stats", {}).get(k, 0)) for rep in reps])
            for k in final_kinds
        },
    }


def aggregate(records: Iterable[Record]) -> dict[str, Any]:
    """``{arm: {phases: {pre, train, post}, uplift, curves, memory}}``, arms in first-seen
    order."""
    by_arm: dict[str, list[Record]] = defaultdict(list)
    for r in records:
        by_arm[str(r["arm"])].append(r)
    arms: dict[str, Any] = {}
    for arm, rs in by_arm.items():
        phases = {p: phase_stats(r for r in rs if r["phase"] == p) for p in PHASES}
        arms[arm] = {
            "phases": phases,
            "uplift": {
                m: phases["post"][m] - phases["pre"][m] for m in ("success_rate", "mean_score")
            },
            "repeats": len({int(r["repeat"]) for r in rs}),
            "curves": _curves(rs),
            "memory": _memory(rs),
        }
    return arms


def plot_curves(arms: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), sharex=True)
    labels = {"success": "success (moving avg 5)", "normalized_score": "normalized score"}
    for ax, metric in zip(axes, METRICS, strict=True):
        for arm, data in arms.items():
            c = data["curves"][metric]
            xs = list(range(1, len(c["mean"]) + 1))
            if not xs:
                continue
            (line,) = ax.plot(xs, c["mean"], label=arm)
            ax.fill_between(xs, c["low"], c["high"], color=line.get_color(), alpha=0.2)
        ax.set_xlabel("training episode")
        ax.set_ylabel(labels[metric])
        ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(arms: dict[str, Any], env: str) -> str:
    lines = [f"# Benchmark report{f' — {env}' if env else ''}", ""]
    lines += [
        "Held-out seeds are played frozen before (pre) and after (post) the training stream.",
        "",
        "| arm | pre success | post success | uplift success | pre score | post score "
        "| uplift score | train success | train score |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm, d in arms.items():
        p, u = d["phases"], d["uplift"]
        lines.append(
            f"| {arm} | {p['pre']['success_rate']:.3f} | {p['post']['success_rate']:.3f} "
            f"| {u['success_rate']:+.3f} | {p['pre']['mean_score']:.3f} "
            f"| {p['post']['mean_score']:.3f} | {u['mean_score']:+.3f} "
            f"| {p['train']['success_rate']:.3f} | {p['train']['mean_score']:.3f} |"
        )
    for arm, d in arms.items():
        lines += ["", f"## {arm} ({d['repeats']} repeat(s))", ""]
        lines += [
            "| phase | episodes | success rate | mean score | mean steps | mean tokens "
            "| total tokens | mean wall s | total wall s |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for phase, s in d["phases"].items():
            lines.append(
                f"| {phase} | {s['episodes']:.0f} | {s['success_rate']:.3f} "
                f"| {s['mean_score']:.3f} | {s['mean_steps']:.2f} | {s['mean_tokens']:.0f} "
                f"| {s['total_tokens']:.0f} | {s['mean_wall_s']:.2f} | {s['total_wall_s']:.1f} |"
            )
        mem = d["memory"]
        written = ", ".join(f"{k} {v:g}" for k, v in mem["written_in_training"].items())
        final = ", ".join(f"{k} {v:g}" for k, v in mem["final_counts"].items())
        lines += ["", f"Memories written in training: {written or 'none'}."]
        lines += [f"Memory at the end: {final or 'not recorded'}."]
        lines += ["", f"![{arm}](curve_{arm}.png)"]
    lines += ["", "![all arms](curves.png)", ""]
    return "\n".join(lines)


def write_report(out: Path) -> dict[str, Any]:
    """Write ``curves.png``, ``curve_<arm>.png``, ``report.md`` and ``report.json`` into
    ``out``; returns the JSON object."""
    records = load_records(out)
    arms = aggregate(records)
    env = next((str(r.get("env", "")) for r in records), "")
    report = {"env": env, "episodes": len(records), "window": WINDOW, "arms": arms}
    (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
    (out / "report.md").write_text(markdown(arms, env), encoding="utf-8")
    plot_curves(arms, out / "curves.png", f"learning curves {env}".strip())
    for arm, data in arms.items():
        plot_curves({arm: data}, out / f"curve_{arm}.png", f"{arm} {env}".strip())
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m benchmarks.report OUT", file=sys.stderr)
        return 2
    out = Path(args[0])
    if not (out / EPISODES_FILE).is_file():
        print(f"error: no {EPISODES_FILE} in {out}", file=sys.stderr)
        return 2
    if not load_records(out):  # an empty report would look like a run that played nothing
        print(f"error: {out / EPISODES_FILE} holds no episode a benchmark wrote", file=sys.stderr)
        return 2
    write_report(out)
    print(f"wrote {out / 'report.md'}, {out / 'report.json'} and the curves (PNG)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
