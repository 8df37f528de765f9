"""A tiny deterministic key-and-chest game for fast tests of the agent graph.

It needs no dependency and builds in microseconds, so unit tests can run whole episodes
without TextWorld. The layout (2–4 rooms in a chain, where the key and the chest lie) is a
pure function of the seed.
"""

from __future__ import annotations

import random
from collections import deque

from benchmarks.envs.base import Observation, StepInfo, StepResult

_ROOM_NAMES = ["hall", "kitchen", "attic", "cellar", "study", "garden", "pantry", "library"]
_MOVES = {"north": (0, 1), "south": (0, -1), "east": (1, 0), "west": (-1, 0)}
_OPPOSITE = {"north": "south", "south": "north", "east": "west", "west": "east"}
_TASK = "Find the key, take it, then find the locked chest and open it."


class ToyEnv:
    """``toy:keys``: take the key (+1), open the locked chest (+1, wins)."""

    def __init__(self, seed: int) -> None:
        self._seed = seed
        rng = random.Random(seed)
        n_rooms = rng.randint(2, 4)
        self._names = rng.sample(_ROOM_NAMES, n_rooms)
        self._exits = self._chain(rng, n_rooms)
        self._key_room = rng.randrange(n_rooms)
        self._chest_room = rng.randrange(n_rooms)
        self._reset_state()

    @staticmethod
    def _chain(rng: random.Random, n_rooms: int) -> list[dict[str, int]]:
        # A self-avoiding walk on a grid: room i+1 lies next to room i, and no two rooms
        # share a cell, so directions stay consistent ("go north" then "go south" returns).
        cells = [(0, 0)]
        exits: list[dict[str, int]] = [{}]
        for i in range(1, n_rooms):
            x, y = cells[-1]
            free = [d for d, (dx, dy) in _MOVES.items() if (x + dx, y + dy) not in cells]
            direction = rng.choice(sorted(free))
            dx, dy = _MOVES[direction]
            cells.append((x + dx, y + dy))
            exits[i - 1][direction] = i
            exits.append({_OPPOSITE[direction]: i - 1})
        return exits

    def _reset_state(self) -> None:
        self._room = 0
        self._has_key = False
        self._key_taken = False
        self._chest_open = False

    @property
    def env_id(self) -> str:
        return "toy:keys"

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def walkthrough(self) -> list[str]:
        """Shortest winning command sequence from the start."""
        return [
            *self._path(0, self._key_room),
            "take key",
            *self._path(self._key_room, self._chest_room),
            "open chest",
        ]

    def _path(self, start: int, goal: int) -> list[str]:
        previous: dict[int, tuple[int, str] | None] = {start: None}
        queue = deque([start])
        while queue:
            room = queue.popleft()
            for direction, nxt in sorted(self._exits[room].items()):
                if nxt not in previous:
                    previous[nxt] = (room, f"go {direction}")
                    queue.append(nxt)
        steps: list[str] = []
        node = goal
        while (link := previous[node]) is not None:
            node, command = link
            steps.append(command)
        return steps[::-1]

    def _describe(self) -> str:
        parts = [f"You are in the {self._names[self._room]}."]
        if self._room == self._key_room and not self._key_taken:
            parts.append("A brass key lies on the floor.")
        if self._room == self._chest_room:
            state = "open" if self._chest_open else "locked"
            parts.append(f"There is a {state} chest here.")
        exits = ", ".join(sorted(self._exits[self._room]))
        parts.append(f"Exits: {exits}.")
        return " ".join(parts)

    def _admissible(self) -> list[str]:
        commands = ["look", "inventory"]
        commands += [f"go {d}" for d in self._exits[self._room]]
        if self._room == self._key_room and not self._key_taken:
            commands.append("take key")
        if self._room == self._chest_room and not self._chest_open:
            commands.append("open chest")
        return sorted(commands)

    def _info(self) -> StepInfo:
        score = float(self._key_taken) + float(self._chest_open)
        return StepInfo(
            score=score,
            max_score=2.0,
            won=self._chest_open,
            extra={"walkthrough": self.walkthrough},
        )

    def reset(self) -> Observation:
        self._reset_state()
        return Observation(
            task=_TASK, text=self._describe(), admissible=self._admissible(), info=self._info()
        )

    def step(self, action: str) -> StepResult:
        before = self._info().score
        text = self._apply(" ".join(action.lower().split()))
        info = self._info()
        return StepResult(
            text=text,
            admissible=self._admissible(),
            reward=info.score - before,
            done=info.won,
            info=info,
        )

    def _apply(self, command: str) -> str:
        if self._chest_open:
            return "The game is over: the chest is already open."
        if command == "look":
            return self._describe()
        if command == "inventory":
            return "You carry a brass key." if self._has_key else "You carry nothing."
        if command.startswith("go "):
            target = self._exits[self._room].get(command[3:])
            if target is None:
                return "You can't go that way."
            self._room = target
            return self._describe()
        if command == "take key":
            if self._room != self._key_room or self._key_taken:
                return "There is no key here."
            self._has_key = self._key_taken = True
            return "You take the brass key."
        if command == "open chest":
            if self._room != self._chest_room:
                return "There is no chest here."
            if not self._has_key:
                return "The chest is locked. You need a key."
            self._chest_open = True
            return "You unlock the chest with the brass key and open it. You win!"
        return "I don't understand that."

    def close(self) -> None:
        """Nothing to release; present to satisfy the ``Env`` protocol."""
