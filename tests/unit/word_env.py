"""A tiny generated game whose solution is written in its text (Env protocol).

A note names the thing to fetch; several things lie around. Fetching the named one wins
(+1), fetching another loses. Seeds below 1000 draw names from one vocabulary, seeds from
1000 on from another, so a player that wins held-out seeds has learned to read the note,
not which word wins.
"""

from __future__ import annotations

import random

from benchmarks.envs.base import Observation, StepInfo, StepResult

TRAIN_WORDS = [
    "apple",
    "bucket",
    "candle",
    "drum",
    "feather",
    "globe",
    "hammer",
    "jar",
    "kettle",
    "ladder",
]
TEST_WORDS = [
    "marble",
    "needle",
    "oar",
    "pillow",
    "quill",
    "rope",
    "saddle",
    "trumpet",
    "umbrella",
    "violin",
]


class WordEnv:
    def __init__(self, seed: int) -> None:
        self._seed = seed
        words = TEST_WORDS if seed >= 1000 else TRAIN_WORDS
        rng = random.Random(seed)
        self.things = rng.sample(words, 4)
        self.wanted = self.things[rng.randrange(4)]
        self._done = False
        self._won = False

    @property
    def env_id(self) -> str:
        return "test:words"

    @property
    def seed(self) -> int:
        return self._seed

    def _admissible(self) -> list[str]:
        if self._done:
            return []
        return ["look", "wait", *(f"fetch {t}" for t in sorted(self.things))]

    def _info(self) -> StepInfo:
        return StepInfo(
            score=float(self._won), max_score=1.0, won=self._won, lost=self._done and not self._won
        )

    def reset(self) -> Observation:
        self._done = self._won = False
        room = ", ".join(f"a {t}" for t in self.things)
        return Observation(
            task="Do what the note says.",
            text=f"A note on the wall.\nfetch the {self.wanted}\n\nYou see {room}.",
            admissible=self._admissible(),
            info=self._info(),
        )

    def step(self, action: str) -> StepResult:
        reward = 0.0
        if action.startswith("fetch ") and action in self._admissible():
            self._done = True
            self._won = action == f"fetch {self.wanted}"
            reward = float(self._won)
            text = "Well done." if self._won else "That was not it."
        else:
            text = "Nothing happens."
        return StepResult(
            text=text,
            admissible=self._admissible(),
            reward=reward,
            done=self._done,
            info=self._info(),
        )

    def close(self) -> None:
        pass
