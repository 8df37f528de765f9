"""The executor's shortlist of admissible actions when there are too many to offer."""

from __future__ import annotations

from agent.shortlist import shortlist

ACTIONS = [
    "go to hallway",
    "go to kitchen",
    "open door to kitchen",
    "look at table",
    "look at frog",
    "pick up frog",
    "focus on frog",
    "focus on table",
    "move table to kitchen",
    "wait",
]


def test_under_the_limit_or_no_limit_everything_is_offered_in_order() -> None:
    assert shortlist(ACTIONS, 10, task="t", observation="o") == ACTIONS
    assert shortlist(ACTIONS, 0, task="t", observation="o") == ACTIONS


def test_words_of_the_task_weigh_most_and_common_words_nothing() -> None:
    got = shortlist(ACTIONS, 3, task="Find the frog and focus on it.", observation="A table.")
    # "focus", "on" and "frog" all occur in the task and in few actions; "look at frog" wins
    # the tie with "pick up frog" by coming first; the list keeps the environment's order.
    assert got == ["look at frog", "focus on frog", "focus on table"]


def test_the_observation_counts_and_ties_keep_the_environment_order() -> None:
    got = shortlist(ACTIONS, 2, task="Explore.", observation="A door leads to the kitchen.")
    assert got == ["go to kitchen", "open door to kitchen"]


def test_kept_actions_always_make_the_list() -> None:
    got = shortlist(ACTIONS, 3, task="focus on the frog", observation="", keep=["wait", "nope"])
    assert len(got) == 3 and "wait" in got and "nope" not in got
    assert got == [a for a in ACTIONS if a in got]  # the environment's order
