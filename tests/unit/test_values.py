"""Step values over generic text features: they carry over to games never seen."""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from word_env import TEST_WORDS, WordEnv

from agent import Agent
from agent.config import load_settings
from agent.llm.scripted import ScriptedLLM
from memory import HashingEmbedder, MemoryStore, textfeatures
from memory import ridge as ridge_module
from memory import values as values_module
from memory.records import MemoryRecord, Provenance
from memory.ridge import NO_START, Solved, ridge_fit, ridge_fits, ridge_solve
from memory.textfeatures import EpisodeText, action_features, analyse, parse_action, stem
from memory.values import (
    StoredStep,
    ValueFunction,
    ValueParams,
    ValueSnapshot,
    ValueStep,
    discovery,
    enabler_credit,
    enablers,
    instruction_credit,
    newly_admissible,
    stored_steps,
)


def stored(store: MemoryStore) -> list[StoredStep]:
    """Every step the store's value records hold, in the order they were learned."""
    return [s for r in store.records("value") for s in stored_steps(r)]


def test_stems_join_inflections() -> None:
    for a, b in [("roasted", "roast"), ("fried", "fry"), ("sliced", "slice"), ("chopped", "chop")]:
        assert stem(a) == stem(b), (a, b)
    assert stem("apples") == stem("apple") and stem("roast") != stem("toast")


def test_parse_action_splits_verb_object_and_tool() -> None:
    act = parse_action("cook the red potato with oven")
    assert act.verb == "cook" and act.obj == ("red", "potato") and act.tool == ("oven",)


def test_features_tell_an_instructed_action_from_another() -> None:
    ctx = EpisodeText.start(
        "Do what the note says.", "A note.\nfetch the jar\n\nYou see a jar, a drum."
    )
    jar, drum = action_features(ctx, "fetch jar"), action_features(ctx, "fetch drum")
    assert jar == sorted(set(jar)) and jar != drum
    # Same relation to the text, other words: most features are shared.
    other = EpisodeText.start("Do what the note says.", "A note.\nfetch the oar\n\nYou see a oar.")
    shared = set(jar) & set(action_features(other, "fetch oar"))
    assert len(shared) > len(set(jar) & set(drum))
    # Taking an action changes its own features (it has been taken once).
    ctx.observe("look", "Nothing happens.", 0.0)
    assert action_features(ctx, "look") != action_features(
        EpisodeText.start("Do what the note says.", ctx.observation), "look"
    )


def test_feature_hash_cache_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    cached = textfeatures._hash
    cached.cache_clear()
    copies = textfeatures._copies
    copies.cache_clear()
    textfeatures._generic.cache_clear()  # it holds _copies' results
    seen: list[int] = []

    def checked_copies(generic: tuple[object, ...]) -> tuple[int, ...]:
        got = copies(generic)
        assert got == copies.__wrapped__(generic), generic
        return got

    def checked(parts: tuple[object, ...]) -> int:
        # Whatever the cache returns is what hashing these very parts gives.
        index = cached(parts)
        assert index == cached.__wrapped__(parts), parts
        seen.append(index)
        return index

    monkeypatch.setattr(textfeatures, "_hash", checked)
    monkeypatch.setattr(textfeatures, "_copies", checked_copies)
    ctx = EpisodeText.start("Follow the card.", "A card.\nslice the red pear\n\nA red pear.")
    for action, answer, reward in [
        ("take red pear", "Taken.", 1.0),
        ("slice red pear with knife", "You slice the red pear.", 1.0),
        ("slice red pear with knife", "Already sliced.", 0.0),
        ("eat red pear", "You lose.", 0.0),
    ]:
        for other in ("take red pear", "dice pear", "look", "eat card", "go north"):
            analyse(ctx, other)
        ctx.observe(action, answer, reward)
    assert len(seen) > 500 and cached.cache_info().hits > 0 and copies.cache_info().hits > 0


def test_assessed_values_are_the_weights_summed_over_each_actions_features() -> None:
    """``assess`` remembers each view's value in the episode's context; whatever the episode
    shows next, and under other weights on the same context, a value is its features'
    weights summed."""
    rng = np.random.default_rng(3)
    snapshots = [
        ValueSnapshot(rng.normal(size=textfeatures.DIM), Counter(), Counter(), 5, 50, ValueParams())
        for _ in range(2)
    ]
    ctx = EpisodeText.start("Follow the card.", "A card.\ntake the lamp\nslice the red pear")
    actions = ["take red pear", "slice red pear with knife", "take lamp", "look", "go north"]
    script = [
        ("look", "A card.\ntake the lamp\nslice the red pear", 0.0),
        ("take lamp", "You take the lamp.", 1.0),
        ("go north", "A kitchen. A knife and a red pear lie here.", 0.0),
        ("take red pear", "Taken.", 1.0),
    ]
    for action, answer, reward in script:
        for snap in (*snapshots, snapshots[0]):
            got = snap.assess(ctx, [*actions, actions[0]])
            for a, value, signature in zip([*actions, actions[0]], *got, strict=True):
                view = analyse(ctx, a)
                assert value == pytest.approx(float(snap.weights[view.features].sum()), abs=1e-9)
                assert signature == view.signature
        ctx.observe(action, answer, reward)


def test_remembered_analyses_equal_fresh_ones() -> None:
    """``analyse`` remembers its results per context; whatever the episode shows next (lines
    again, new lines naming an action's words, rewards, repeated moves), a remembered result
    is what analysing from scratch gives."""
    card = "A card.\ntake the lamp\nslice the red pear"
    ctx = EpisodeText.start("Follow the card.", card)
    knife, axe = "slice red pear with knife", "slice red pear with axe"
    # (Two actions alike in everything but their words: "eat stone", "eat plank".)
    actions = [
        "take red pear",
        knife,
        axe,
        "dice pear",
        "look",
        "go north",
        "eat stone",
        "eat plank",
    ]
    nothing = "Nothing happens."
    # Each step changes one thing the results depend on, and little else:
    script = [
        ("look", card, 0.0),  # the same lines again
        ("wait", "Time passes.", 0.0),  # the pear leaves the observation
        ("look", card, 0.0),
        ("wait", "Time passes.", 0.0),
        ("take lamp", "You take the lamp.", 1.0),  # answers a line before the pear's
        (knife, nothing, 0.0),
        (axe, nothing, 0.0),  # the same verb on the same object: the knife's twice now
        (knife, nothing, 0.0),  # the knife itself twice
        ("go north", "A kitchen. A knife lies here.", 0.0),
        ("go north", "A kitchen. A knife lies here.", 0.0),
        ("take red pear", "Taken.", 1.0),
    ]
    remembered = 0
    for action, answer, reward in script:
        for a in actions:
            memo = ctx._actions.get(a)
            before = None if memo is None else memo.view
            got = analyse(ctx, a)
            remembered += got is before
            act = parse_action(a)
            fresh = textfeatures._analyse(
                ctx,
                act,
                min(ctx.taken.count(a), 2),
                min(
                    sum(
                        (p.verb, p.obj) == (act.verb, act.obj) for p in map(parse_action, ctx.taken)
                    ),
                    2,
                ),
            )
            assert got == fresh, (a, len(ctx.taken))
        ctx.observe(action, answer, reward)
    assert remembered > 0  # some results were reused, and were right


def test_a_line_naming_verb_and_object_marks_the_instructed_move() -> None:
    ctx = EpisodeText.start(
        "Follow the card.", "A card.\nslice the red pear\n\nYou hold a red pear."
    )
    slice_, dice = (
        analyse(ctx, "slice red pear with knife"),
        analyse(ctx, "dice red pear with knife"),
    )
    # Both actions cover the object; only one is the move the line names.
    assert slice_.signature.split("|")[3] == "1" and dice.signature.split("|")[3] == "0"
    assert slice_.features != dice.features and slice_.features == action_features(
        ctx, "slice red pear with knife"
    )
    # Once a rewarded answer has carried the line out, it is no longer open.
    ctx.observe("slice red pear with knife", "You slice the red pear.", 1.0)
    assert analyse(ctx, "slice red pear with knife").signature.split("|")[3] == "0"


def test_an_action_knows_which_step_revealed_the_instruction_it_carries_out() -> None:
    ctx = EpisodeText.start("Follow the card.", "You hold a red pear.\nslice the pear")
    ctx.observe("look", "Nothing.", 0.0)
    ctx.observe("read card", "The card says:\nslice the red pear\nfry the red pear", 0.0)
    # The longest line it covers came from step 1's answer; a line the first observation
    # showed is no step's doing; a line naming another verb is not carried out.
    assert analyse(ctx, "slice red pear with knife").source == 1
    assert analyse(ctx, "slice pear").source is None
    assert analyse(ctx, "dice red pear").source is None
    # Reading the card again shows the same lines: they keep their first origin.
    ctx.observe("read card", "The card says:\nslice the red pear\nfry the red pear", 0.0)
    assert analyse(ctx, "fry red pear with stove").source == 1


def test_revealing_an_instruction_earns_the_reward_of_carrying_it_out() -> None:
    def steps(source: int | None) -> list[ValueStep]:
        return [
            ValueStep(state="s", action="read card", reward=0.0, features=[1]),
            ValueStep(state="s", action="look", reward=0.0, features=[2]),
            ValueStep(state="s", action="fry pear", reward=1.0, features=[3], source=source),
        ]

    assert instruction_credit(steps(0), 1.0) == [1.0, 0.0, 0.0]
    assert instruction_credit(steps(0), 0.5) == [0.5, 0.0, 0.0]
    assert instruction_credit(steps(None), 1.0) == [0.0, 0.0, 0.0]
    store = MemoryStore.in_memory(HashingEmbedder())
    store.values.learn(steps(0), won=False, lost=False, provenance=Provenance(episode_id="e"))
    read = next(s for s in stored(store) if s.action == "read card")
    look = next(s for s in stored(store) if s.action == "look")
    # Reading earns the later reward as its own (its immediate outcome, and in its return
    # undiscounted); the step in between gets only the discounted return.
    assert read.credit == 1.0 and read.immediate == 1.0
    assert read.q > look.q and look.credit == 0.0


def test_the_move_that_made_a_rewarded_action_possible_earns_its_reward() -> None:
    actions = ["take knife", "look", "drop knife", "take knife", "slice pear with knife"]
    before = ["take knife", "look"]
    after = [
        ["look", "drop knife", "slice pear with knife"],  # the knife in hand
        ["look", "drop knife", "slice pear with knife"],
        ["take knife", "look"],
        ["look", "drop knife", "slice pear with knife"],
        ["look", "eat pear"],
    ]
    enabled = [newly_admissible(b, a) for b, a in zip([before, *after], after, strict=False)]
    assert enabled[0] == ["drop knife", "slice pear with knife"] and enabled[1] == []
    # The slice became possible twice; the second take, after which it was taken, made it so.
    assert enablers(actions, enabled) == [None, None, 0, 2, 3]

    def steps(weight_on: bool) -> list[ValueStep]:
        made = enablers(actions, enabled) if weight_on else [None] * 5
        return [
            ValueStep(
                state="s", action=a, reward=float(a.startswith("slice")), features=[i], enabler=e
            )
            for i, (a, e) in enumerate(zip(actions, made, strict=True))
        ]

    assert enabler_credit(steps(True), 1.0) == [0.0, 0.0, 0.0, 1.0, 0.0]
    assert enabler_credit(steps(True), 0.5) == [0.0, 0.0, 0.0, 0.5, 0.0]
    assert enabler_credit(steps(False), 1.0) == [0.0] * 5
    store = MemoryStore.in_memory(HashingEmbedder(), values=ValueParams(enabler_credit=1.0))
    store.values.learn(steps(True), won=False, lost=False, provenance=Provenance(episode_id="e"))
    credit = {s.step: s.credit for s in stored(store)}
    assert credit == {0: 0.0, 1: 0.0, 2: 0.0, 3: 1.0, 4: 0.0}
    # Off (weight 0), nothing is credited.
    off = MemoryStore.in_memory(HashingEmbedder(), values=ValueParams(enabler_credit=0.0))
    off.values.learn(steps(True), won=False, lost=False, provenance=Provenance(episode_id="e"))
    assert {s.credit for s in stored(off)} == {0.0}


def test_the_agent_credits_the_moves_that_made_rewarded_actions_admissible(
    evolvent_home: Path,
) -> None:
    from benchmarks.envs.toy import ToyEnv

    env = ToyEnv(4)  # the key is west of the chest's room, where the game starts
    walk = iter(env.walkthrough)
    assert env.walkthrough == ["go west", "take key", "go east", "open chest"]
    llm = ScriptedLLM(responder=lambda k, p, o: next(walk) if k == "choose" else "ok")
    # No discovery reward: "open chest" earns exactly its reward, and passes exactly that on.
    params = ValueParams(enabler_credit=1.0, discovery_reward=0.0)
    store = MemoryStore.in_memory(HashingEmbedder(), values=params)
    settings = load_settings(None, home=str(evolvent_home))
    with Agent(settings, llm=llm, memory=store, embedder=store.embedder) as agent:
        result = agent.run(env, max_steps=6)
    assert result.success
    records = stored(store)
    # "go west" made "take key" admissible and "go east" "open chest" (again: the game
    # starts by the chest): each earns the reward (1) of the action it made possible.
    assert [(s.action, s.credit) for s in records] == [
        ("go west", 1.0),
        ("take key", 0.0),
        ("go east", 1.0),
        ("open chest", 0.0),
    ]


def test_an_episode_counts_the_words_each_answer_shows_first() -> None:
    ctx = EpisodeText.start("Cook the meal.", "A kitchen. A cookbook lies on the table.")
    ctx.observe("read cookbook", "Recipe:\nred pear\nSlice the red pear. Prepare the meal.", 0)
    ctx.observe("look", "A kitchen. A cookbook lies on the table.", 0)
    ctx.observe("open fridge", "You open the fridge. Inside: a red pear and a carrot.", 0)
    # recipe, red, pear, slice, prepare (meal is in the task); nothing; open, fridge, inside,
    # carrot ("red pear" was read already).
    assert ctx.discovered == [5, 0, 4]


def test_a_step_earns_a_little_for_what_it_revealed() -> None:
    p = ValueParams(discovery_reward=0.2, discovery_words=10)
    assert [discovery(n, p) for n in (0, 5, 10, 30)] == [0.0, 0.1, 0.2, 0.2]
    steps = [
        ValueStep(state="s", action="read cookbook", reward=0.0, features=[1], discovered=10),
        ValueStep(state="s", action="look", reward=0.0, features=[2], discovered=0),
        ValueStep(state="s", action="open fridge", reward=0.0, features=[3], discovered=5),
        ValueStep(state="s", action="take pear", reward=1.0, features=[4], discovered=0, enabler=2),
    ]

    def learned(params: ValueParams) -> dict[str, dict[str, Any]]:
        store = MemoryStore.in_memory(HashingEmbedder(), values=params)
        store.values.learn(steps, won=False, lost=False, provenance=Provenance(episode_id="e"))
        return {s.action: s.model_dump() for s in stored(store)}

    on = learned(ValueParams(enabler_credit=0.5))
    off = learned(ValueParams(enabler_credit=0.5, discovery_reward=0.0))
    # Each record says what its step earned for discovery, apart from the reward.
    assert [on[a]["discovery"] for a in ("read cookbook", "look", "open fridge")] == [0.2, 0, 0.1]
    assert {m["discovery"] for m in off.values()} == {0.0}
    assert on["read cookbook"]["reward"] == 0.0  # the environment's reward, unchanged
    # Its immediate outcome and its return hold it; the enabler's credit is unchanged (the
    # step it enabled discovered nothing).
    assert on["read cookbook"]["immediate"] == pytest.approx(0.2)
    assert off["read cookbook"]["immediate"] == 0.0
    assert on["read cookbook"]["q"] > off["read cookbook"]["q"]
    assert on["open fridge"]["credit"] == off["open fridge"]["credit"] == 0.5


def test_immediate_outcomes_blame_the_losing_step_not_the_clock() -> None:
    store = MemoryStore.in_memory(HashingEmbedder())
    step = ValueStep(state="s", action="poke", reward=1.0, features=[5], signature="poke|0")
    for won, lost, episode, expected in [(False, True, "a", 0.0), (False, False, "b", 1.0)]:
        store.values.learn([step], won, lost, Provenance(episode_id=episode))
        rec = next(r for r in store.records("value") if r.provenance.episode_id == episode)
        (kept,) = stored_steps(rec)
        assert kept.immediate == expected and kept.signature == "poke|0"
    # The losing step's return and immediate outcome both carry the penalty (1 - 1 = 0).
    assert {r.q for r in store.records("value")} == {0.0, 0.5}


def test_signature_counts_match_the_records() -> None:
    values = MemoryStore.in_memory(HashingEmbedder()).values
    for episode, sigs in [("a", ["x|1", "y|0"]), ("b", ["x|1"]), ("c", ["x|1", "z|2"])]:
        steps = [
            ValueStep(state="s", action=f"act {i}", reward=0.0, features=[i], signature=sig)
            for i, sig in enumerate(sigs)
        ]
        values.learn(steps, won=False, lost=False, provenance=Provenance(episode_id=episode))
        # Each record counted once, the episode just learned included.
        recorded = Counter(
            s.signature for r in values.backend.scan(values.collection) for s in stored_steps(r)
        )
        assert values._signatures == recorded
    assert recorded == Counter({"x|1": 3, "y|0": 1, "z|2": 1})
    # Exploration counts the episode learned last once more, until the records change.
    assert values._recent == Counter({"x|1": 1, "z|2": 1})
    values.backend.delete(
        values.collection, [r.id for r in values.backend.scan(values.collection)][:1]
    )
    values.snapshot()
    assert values._recent == Counter()


def test_a_snapshot_keeps_the_values_it_was_taken_with() -> None:
    values = MemoryStore.in_memory(HashingEmbedder()).values
    ctx = EpisodeText.start("t", "A jar.")
    jar = ValueStep(
        state="s", action="fetch jar", reward=1.0, features=action_features(ctx, "fetch jar")
    )
    values.learn(
        [jar.model_copy(update={"signature": "a"})], True, False, Provenance(episode_id="a")
    )
    before = values.snapshot()
    seen = before.assess(ctx, ["fetch jar", "look"])
    assert before.episodes == 1 and before.active() and seen.values[0] > seen.values[1]
    values.learn(
        [jar.model_copy(update={"signature": "b"})], False, True, Provenance(episode_id="b")
    )
    # What an episode acts on stays as it was; a snapshot taken now has moved on.
    assert before.assess(ctx, ["fetch jar", "look"]) == seen
    assert before.episodes == 1 and dict(before.signatures) == {"a": 1}
    assert before.recent == Counter({"a": 1})
    after = values.snapshot()
    assert after.episodes == 2 and dict(after.signatures) == {"a": 1, "b": 1}
    assert after.assess(ctx, ["fetch jar"]).values != seen.values[:1]


def test_episodes_learned_without_a_read_between_cost_one_fit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fits: list[int] = []
    real_solve = ridge_solve

    def counted(feats: Any, ys: list[np.ndarray], *args: Any, **kw: Any) -> Solved:
        fits.extend(len(y) for y in ys)
        return real_solve(feats, ys, *args, **kw)

    monkeypatch.setattr(values_module, "ridge_solve", counted)
    values = MemoryStore.in_memory(HashingEmbedder()).values
    steps = [ValueStep(state="s", action="fetch jar", reward=1.0, features=[7, 9])]
    for episode in "abc":  # a batch's deferred learning: no read in between
        values.learn(steps, True, False, Provenance(episode_id=episode))
    assert fits == []
    first = values.snapshot()
    # One fit of each model (returns, immediate outcomes) over all three episodes' records.
    assert fits == [3, 3] and first.support == 3
    assert values.snapshot().weights is first.weights and len(fits) == 2  # nothing new
    values.learn(steps, False, True, Provenance(episode_id="d"))
    assert values.snapshot().weights[7] < first.weights[7] and fits[2:] == [4, 4]


def test_exploration_prefers_kinds_of_moves_rarely_tried() -> None:
    values = MemoryStore.in_memory(HashingEmbedder()).values
    values.params = ValueParams(epsilon=0.0, epsilon_min=0.0, novelty_bonus=0.0)
    ctx = EpisodeText.start("Do what the note says.", "You see a jar and a drum.")
    # Steps without features leave every value at 0: only the signature counts differ.
    tried = ValueStep(
        state="s",
        action="fetch jar",
        reward=0.0,
        features=[],
        signature=analyse(ctx, "fetch jar").signature,
    )
    values.learn([tried] * 3, won=False, lost=False, provenance=Provenance(episode_id="e"))
    acting = values.snapshot()
    assert acting.assess(ctx, ["fetch jar", "kick drum"]).values == [0.0, 0.0]
    rng = random.Random(0)
    picks = {acting.explore_choice(ctx, ["fetch jar", "kick drum"], rng)[0] for _ in range(5)}
    assert picks == {"kick drum"}


def test_exploration_values_a_kind_of_move_never_tried_at_least_the_floor() -> None:
    values = MemoryStore.in_memory(HashingEmbedder()).values
    values.params = ValueParams(epsilon=0.0, epsilon_min=0.0, novelty_bonus=0.0, coverage_bonus=0.0)
    task, first = "Bake a cake, then enjoy it.", "You see a jar.\nYou see a cake."
    for episode, action, lost in [("a", "eat jar", True), ("b", "look", False)]:
        view = analyse(EpisodeText.start(task, first), action)
        step = ValueStep(
            state="s", action=action, reward=0.0, features=view.features, signature=view.signature
        )
        values.learn([step], won=False, lost=lost, provenance=Provenance(episode_id=episode))
    ctx = EpisodeText.start(task, first)
    acting = values.snapshot()
    seen = acting.assess(ctx, ["eat cake", "eat jar", "look"])
    # The fit rates eating the cake by the lost "eat jar": worse than looking around...
    assert seen.values[0] < seen.values[2] < 0
    # ...but eating what the task names is a kind of move no episode has tried.
    assert acting.signatures[seen.signatures[0]] == 0 < acting.signatures[seen.signatures[2]]
    rng = random.Random(0)
    picks = {acting.explore_choice(ctx, ["eat cake", "eat jar", "look"], rng)[0] for _ in range(5)}
    assert picks == {"eat cake"}
    values.params = values.params.model_copy(update={"untried_floor": None})
    acting = values.snapshot()
    picks = {acting.explore_choice(ctx, ["eat cake", "eat jar", "look"], rng)[0] for _ in range(5)}
    assert picks == {"look"}


def test_ridge_fit_recovers_a_linear_target() -> None:
    rng = np.random.default_rng(0)
    true = {3: 1.0, 7: -0.5, 11: 0.25}
    feats = [
        np.array(sorted(rng.choice([3, 7, 11, 20], size=2, replace=False))) for _ in range(200)
    ]
    y = np.array([sum(true.get(int(i), 0.0) for i in f) for f in feats])
    w = ridge_fit(feats, y, ridge=1e-3, iterations=100, start=np.zeros(1 << 18))
    assert w[3] == pytest.approx(1.0, abs=0.02) and w[7] == pytest.approx(-0.5, abs=0.02)


def test_fitting_two_targets_at_once_equals_fitting_each() -> None:
    rng = np.random.default_rng(3)
    feats = [rng.choice(500, size=12, replace=False).astype(np.int64) for _ in range(40)]
    feats.append(np.array([], dtype=np.int64))  # a row without features
    ys = [rng.normal(size=41), rng.normal(size=41)]
    starts = [np.zeros(1 << 18), rng.normal(size=1 << 18)]
    both = ridge_fits(feats, ys, 0.5, 30, starts)
    for y, start, w in zip(ys, starts, both, strict=True):
        assert np.array_equal(w, ridge_fit(feats, y, 0.5, 30, start))


def _plain_conjugate_gradients(
    feats: list[np.ndarray], y: np.ndarray, ridge: float, iterations: int, start: np.ndarray
) -> np.ndarray:
    """The solve written plainly with scipy's operators: what ``ridge_fits`` must equal."""
    from scipy.sparse import csr_matrix

    active, local = np.unique(np.concatenate(feats), return_inverse=True)
    rows = np.concatenate([[0], np.cumsum([len(f) for f in feats])])
    x = csr_matrix((np.ones(len(local)), local, rows), shape=(len(feats), len(active)))
    xt = x.T.tocsr()
    w = start[active].copy()
    r = xt @ y - (xt @ (x @ w) + ridge * w)
    d = r.copy()
    rs = float(r @ r)
    for _ in range(iterations):
        if rs < 1e-12:
            break
        ad = xt @ (x @ d) + ridge * d
        step = rs / float(d @ ad)
        w += step * d
        r -= step * ad
        rs_new = float(r @ r)
        d = r + (rs_new / rs) * d
        rs = rs_new
    out = np.zeros(1 << 18)
    out[active] = w
    return out


@pytest.mark.parametrize("kernel", ["scipy kernel", "operators"])
def test_ridge_fits_are_bit_for_bit_the_plain_solve(
    kernel: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The solver's buffers, direct kernel calls and worker threads change no bit of the
    weights (so they change no choice the values make)."""
    if kernel == "operators":
        monkeypatch.setattr(ridge_module, "_matvec", lambda: None)
    else:
        assert ridge_module._matvec() is not None  # this scipy has the kernel
    rng = np.random.default_rng(7)
    pool = rng.choice(1 << 18, size=900, replace=False)
    feats = [np.sort(rng.choice(pool, size=30, replace=False)) for _ in range(300)]
    ys = [rng.normal(size=300), rng.normal(size=300)]
    starts = [rng.normal(size=1 << 18), np.zeros(1 << 18)]
    for iterations in (1, 60):
        fitted = ridge_fits(feats, ys, 1.0, iterations, starts)
        for y, start, w in zip(ys, starts, fitted, strict=True):
            assert np.array_equal(w, _plain_conjugate_gradients(feats, y, 1.0, iterations, start))


def test_a_compact_start_solves_as_its_expansion_does() -> None:
    """``ridge_solve`` starts from compact weights (an earlier solve's): features held by no
    row now count for nothing, the others start where their weights say, bit for bit as
    the whole-space start would."""
    rng = np.random.default_rng(11)
    pool = rng.choice(1 << 18, size=200, replace=False)
    feats = [np.sort(rng.choice(pool, size=10, replace=False)) for _ in range(60)]
    ys = [rng.normal(size=60), rng.normal(size=60)]
    held = np.unique(np.concatenate(feats))
    # Unsorted; some held by a row, some not (a deleted record's), one past every held one.
    features = np.array([held[5], 262143, held[0], 3, held[-1], held[40]])
    assert 262143 not in held and 3 not in held
    start = (features, rng.normal(size=len(features)))
    solved = ridge_solve(feats, ys, 1.0, 30, [start, NO_START])
    whole = [ridge_module.expand(*start), np.zeros(1 << 18)]
    for y, begin, w in zip(ys, whole, solved.expand(), strict=True):
        assert np.array_equal(w, _plain_conjugate_gradients(feats, y, 1.0, 30, begin))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_fits_with_its_own_worker_threads() -> None:
    """The parent's worker threads do not exist in a forked child; a fit there must not wait
    for them forever."""
    rng = np.random.default_rng(5)
    feats = [rng.choice(300, size=8, replace=False).astype(np.int64) for _ in range(30)]
    ys, starts = [rng.normal(size=30), rng.normal(size=30)], [np.zeros(1 << 18)] * 2
    expected = ridge_fits(feats, ys, 0.5, 20, starts)  # the parent's pool now has threads
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if the fit returns the parent's weights
        try:
            got = ridge_fits(feats, ys, 0.5, 20, starts)
            same = all(np.array_equal(a, b) for a, b in zip(got, expected, strict=True))
            os._exit(0 if same else 1)
        except BaseException:
            os._exit(2)
    deadline = time.monotonic() + 30
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            pytest.fail("the fit in the forked child never returned")
        time.sleep(0.01)
    assert os.waitstatus_to_exitcode(status) == 0


def test_ridge_fit_equals_the_closed_form_and_zeroes_features_no_row_holds() -> None:
    rng = np.random.default_rng(1)
    used = np.array([5, 900, 4000, 70000, 262000])
    feats = [np.sort(rng.choice(used, size=3, replace=False)) for _ in range(40)]
    y = rng.normal(size=40)
    start = np.zeros(1 << 18)
    start[[5, 12345]] = 3.0  # 12345: a feature of deleted records, held by no row now
    w = ridge_fit(feats, y, ridge=0.5, iterations=50, start=start)
    x = np.array([[float(i in f) for i in used] for f in feats])
    exact = np.linalg.solve(x.T @ x + 0.5 * np.eye(len(used)), x.T @ y)
    assert w[used] == pytest.approx(exact, abs=1e-6)
    assert np.count_nonzero(w) == len(used) and w[12345] == 0.0


def test_combine_is_the_sum_of_the_expanded_weights_bit_for_bit() -> None:
    rng = np.random.default_rng(3)
    a = np.sort(rng.choice(1 << 18, size=300, replace=False))
    b = np.sort(rng.choice(1 << 18, size=200, replace=False))
    w, v, u = rng.normal(size=300), rng.normal(size=300), rng.normal(size=200)
    cases = [
        ((a, w), (a, v), 0.3),  # one solve's two models: combined in the compact space
        ((a, w), (a.copy(), v), 0.3),  # equal actives, other arrays
        ((a, w), (b, u), 0.7),  # different actives
        ((a, w), (a, v), 0.0),
        ((a, w), NO_START, 0.5),
    ]
    for first, second, scale in cases:
        expected = ridge_module.expand(*first) + scale * ridge_module.expand(*second)
        got = ridge_module.combine(first, second, scale)
        assert got.shape == expected.shape
        assert np.array_equal(got, expected)


def play(values: ValueFunction, seed: int, learn: bool, rng: random.Random) -> bool:
    env = WordEnv(seed)
    obs = env.reset()
    ctx = EpisodeText.start(obs.task, obs.text)
    admissible, steps, won, lost = obs.admissible, [], False, False
    acting = values.snapshot()
    for _ in range(6):
        if learn:
            action, _ = acting.explore_choice(ctx, admissible, rng)
        else:
            action = acting.propose(ctx, admissible, k=1)[0].action
        res = env.step(action)
        steps.append(
            ValueStep(
                state=ctx.observation,
                action=action,
                reward=res.reward,
                features=action_features(ctx, action),
            )
        )
        ctx.observe(action, res.text, res.reward)
        admissible, won, lost = res.admissible, res.info.won, res.info.lost
        if res.done:
            break
    if learn:
        values.learn(steps, won, lost, Provenance(episode_id=f"ep{seed}", seed=seed))
    return won


def test_values_learned_on_some_words_win_with_words_never_seen() -> None:
    store = MemoryStore.in_memory(HashingEmbedder())
    values, rng = store.values, random.Random(0)
    assert not values.active()
    train = [play(values, s, True, rng) for s in range(30)]
    held_out = [play(values, s, False, rng) for s in range(1000, 1020)]
    assert sum(held_out) >= 18, (sum(train), sum(held_out))  # chance: 1 in 4
    assert values.episodes() == 30 and values.active()

    # Every record says where it came from and can be exported and deleted.
    records = list(store.records("value"))
    assert {r.provenance.episode_id for r in records} == {f"ep{s}" for s in range(30)}
    # One record per episode, holding each of its steps with its features.
    assert len(records) == 30 and all(s.features for s in stored(store))
    assert sum(1 for row in store.export() if row["kind"] == "value") == len(records)
    for rec in records:
        assert store.delete(rec.id)
    ctx = EpisodeText.start("Do what the note says.", "fetch the oar\n\nYou see a oar, a rope.")
    assert values.snapshot().assess(ctx, ["fetch oar", "fetch rope"]).values == [0.0, 0.0]
    assert values.episodes() == 0 and not values.active()


def test_the_agent_follows_learned_values_on_new_games(evolvent_home: Path) -> None:
    store = MemoryStore.in_memory(HashingEmbedder())
    # A useless LLM: it always waits; the note is never read by it.
    llm = ScriptedLLM(responder=lambda k, p, o: "wait" if k == "choose" else "ok")
    follow = {"home": str(evolvent_home), "memory.action_policy": "follow"}
    learn = load_settings(None, **follow)
    with Agent(learn, llm=llm, memory=store, embedder=store.embedder) as agent:
        for seed in range(20):
            agent.run(WordEnv(seed), max_steps=6)
    assert store.stats()["value"] > 0
    frozen = load_settings(None, **follow, **{"agent.learn": False})
    with Agent(frozen, llm=llm, memory=store, embedder=store.embedder) as agent:
        results = [agent.run(WordEnv(s), max_steps=6) for s in range(1000, 1010)]
    assert sum(r.success for r in results) >= 9, [r.trajectory[-1].action for r in results]
    assert {st.source for r in results for st in r.trajectory} == {"memory"}
    fetched = [(r.trajectory[-1].action or "").removeprefix("fetch ") for r in results]
    assert all(w in TEST_WORDS for w in fetched), fetched


def test_an_episode_is_one_record_and_records_of_one_step_still_count() -> None:
    store = MemoryStore.in_memory(HashingEmbedder())
    values = store.values
    steps = [
        ValueStep(state="a jar", action="fetch jar", reward=1.0, features=[7, 9], signature="f"),
        ValueStep(state="a drum", action="kick drum", reward=0.0, features=[8], signature="k"),
    ]
    (rid,) = values.learn(steps, won=True, lost=False, provenance=Provenance(episode_id="new"))
    (rec,) = store.records("value")
    assert rec.id == rid and rec.text == "fetch jar; kick drum" and rec.key == "a jar"
    kept = stored_steps(rec)
    assert [(s.step, s.action, s.features, s.signature) for s in kept] == [
        (0, "fetch jar", [7, 9], "f"),
        (1, "kick drum", [8], "k"),
    ]
    assert rec.q == kept[0].q and kept[1].immediate == 1.0  # the win, on the last step
    # A store written when every step was a record of its own: such records are read as
    # one step each, beside the new ones.
    old = MemoryRecord(
        id="val-old",
        kind="value",
        key="a rope",
        text="pull rope",
        q=-0.5,
        provenance=Provenance(episode_id="old"),
        meta={"step": 3, "reward": 0.0, "immediate": -1.0, "signature": "p", "features": "5 6"},
    )
    values.backend.add(values.collection, [old], store.embedder.embed([old.key]))
    (step,) = stored_steps(old)
    assert (step.step, step.action, step.features, step.q, step.immediate) == (
        3,
        "pull rope",
        [5, 6],
        -0.5,
        -1.0,
    )
    acting = values.snapshot()
    assert acting.support == 3 and acting.episodes == 2
    assert dict(acting.signatures) == {"f": 1, "k": 1, "p": 1}
    assert acting.weights[5] < 0 < acting.weights[7]


def test_a_value_record_keeps_its_features_as_one_readable_string() -> None:
    store = MemoryStore.in_memory(HashingEmbedder())
    step = ValueStep(state="s", action="fetch jar", reward=1.0, features=[3, 70, 512])
    store.values.learn([step], won=True, lost=False, provenance=Provenance(episode_id="e"))
    (rec,) = store.records("value")
    assert rec.meta["steps"][0]["features"] == "3 70 512"
    assert stored_steps(rec)[0].features == [3, 70, 512]
    again = MemoryRecord.model_validate_json(rec.model_dump_json())
    assert stored_steps(again) == stored_steps(rec)
