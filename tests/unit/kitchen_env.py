"""A tiny deterministic kitchen game for tests of parametrized macros (Env protocol).

Items lie on a counter; the recipe (a function of the seed) needs one of them taken and
sliced (+1 each); preparing the meal then wins (+1). Only what can run now is admissible.
"""

from __future__ import annotations

from benchmarks.envs.base import Observation, StepInfo, StepResult

ITEMS = ["carrot", "red apple", "yellow potato"]


class KitchenEnv:
    def __init__(self, seed: int) -> None:
        self._seed = seed
        self.wanted = ITEMS[seed % len(ITEMS)]
        self._reset_state()

    def _reset_state(self) -> None:
        self.held: list[str] = []
        self.sliced: list[str] = []
        self.won = False

    @property
    def env_id(self) -> str:
        return "test:kitchen"

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def walkthrough(self) -> list[str]:
        return ["look", f"take {self.wanted}", f"slice {self.wanted}", "prepare meal"]

    def _admissible(self) -> list[str]:
        acts = ["look"] + [f"take {i}" for i in ITEMS if i not in self.held]
        acts += [f"slice {i}" for i in self.held if i not in self.sliced]
        if self.wanted in self.sliced:
            acts.append("prepare meal")
        return acts

    def _info(self) -> StepInfo:
        score = float(self.wanted in self.held) + float(self.wanted in self.sliced)
        return StepInfo(score=score + float(self.won), max_score=3.0, won=self.won)

    def reset(self) -> Observation:
        self._reset_state()
        return Observation(
            task="Cook the meal of the recipe.",
            text=f"Kitchen. The recipe needs a sliced {self.wanted}.",
            admissible=self._admissible(),
            info=self._info(),
        )

    def step(self, action: str) -> StepResult:
        before = self._info().score
        if action in self._admissible():
            verb, _, obj = action.partition(" ")
            if verb == "take":
                self.held.append(obj)
            elif verb == "slice":
                self.sliced.append(obj)
            elif action == "prepare meal":
                self.won = True
        info = self._info()
        return StepResult(
            text=f"You did: {action}.",
            admissible=self._admissible(),
            reward=info.score - before,
            done=self.won,
            info=info,
        )

    def close(self) -> None:
        """Nothing to release."""
