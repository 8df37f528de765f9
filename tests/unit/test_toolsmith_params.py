"""Parametrized macros: string alignment, slot binding from admissible actions, and the
Toolsmith mining, replay-validating and offering them."""

from __future__ import annotations

from kitchen_env import KitchenEnv

from benchmarks.envs.base import Env
from memory import HashingEmbedder
from toolsmith import InProcessToolRegistry, Tool, Toolsmith, mine_templates, resolve_step, unify
from toolsmith.params import bindings, canonical, instantiate, match


def kitchen(env_id: str, seed: int) -> Env:
    assert env_id == "test:kitchen"
    return KitchenEnv(seed)


def test_unify_merges_sequences_differing_in_object_words() -> None:
    assert unify(["take red apple", "slice red apple"], ["take carrot", "slice carrot"]) == (
        ["take {X}", "slice {X}"],
        ["X"],
    )
    two = unify(
        ["take carrot from counter", "put carrot in fridge"],
        ["take red apple from counter", "put red apple in oven"],
    )
    assert two == (["take {X} from counter", "put {X} in {Y}"], ["X", "Y"])


def test_unify_refuses_what_is_not_an_object_substitution() -> None:
    # Different verbs, different lengths, identical sequences.
    assert unify(["take carrot", "slice carrot"], ["take carrot", "dice carrot"]) is None
    assert unify(["take carrot", "slice carrot"], ["take carrot"]) is None
    assert unify(["take carrot", "slice carrot"], ["take carrot", "slice carrot"]) is None
    # No slot links two steps: the object does not flow through the procedure.
    assert unify(["go north", "go east"], ["go south", "go east"]) is None
    assert unify(["examine a", "examine b"], ["examine c", "examine d"]) is None
    # Inconsistent substitution (carrot -> apple, then carrot -> pear).
    assert unify(["take carrot", "slice carrot"], ["take apple", "slice pear"]) is None
    # Values longer than three words are not object names.
    assert unify(["take a b c d", "eat a b c d"], ["take e", "eat e"]) is None
    # Three distinct substitutions: more than two slots.
    assert (
        unify(
            ["put a in b", "take a from b", "give c to a"],
            ["put x in y", "take x from y", "give z to x"],
        )
        is None
    )


def test_match_bindings_instantiate_resolve() -> None:
    steps, slots = ["take {X} from counter", "cook {X} with {Y}"], ["X", "Y"]
    got = match(steps, slots, ["take red potato from counter", "cook red potato with oven"])
    assert got == {"X": "red potato", "Y": "oven"}
    assert match(steps, slots, ["take carrot from counter", "cook potato with oven"]) == {}
    admissible = ["look", "take red potato from counter", "take knife from counter"]
    assert bindings(steps[0], slots, admissible) == [{"X": "red potato"}, {"X": "knife"}]
    assert instantiate(steps, {"X": "carrot"}) == [
        "take carrot from counter",
        "cook carrot with {Y}",
    ]
    # A later slot resolves only when exactly one admissible action fits.
    assert resolve_step("cook carrot with {Y}", ["cook carrot with oven", "eat"], slots) == (
        "cook carrot with oven"
    )
    amb = ["cook carrot with oven", "cook carrot with stove"]
    assert resolve_step("cook carrot with {Y}", amb, slots) is None
    assert resolve_step("eat", ["eat"]) == "eat" and resolve_step("eat", ["look"]) is None
    # Without declared slots, braces are literal text.
    assert resolve_step("say {X}", ["say {X}"]) == "say {X}"
    assert canonical(["cook {Y} with {X}", "eat {Y}"], ["X", "Y"]) == (
        ["cook {X} with {Y}", "eat {X}"],
        ["X", "Y"],
    )


def test_mine_templates_needs_support_and_a_bound_first_step() -> None:
    trajs = [
        ("e1", [["look", "take carrot", "slice carrot", "prepare meal"]]),
        ("e2", [["look", "take red apple", "slice red apple", "prepare meal"]]),
    ]
    (tpl,) = mine_templates(trajs)
    # The maximal template whose first step binds the slot ("look" first would not).
    assert tpl.steps == ["take {X}", "slice {X}", "prepare meal"]
    assert tpl.instances == [{"X": "carrot"}, {"X": "red apple"}]
    assert tpl.support == ["e1", "e2"]
    assert mine_templates(trajs, min_support=3) == []
    assert mine_templates(trajs[:1]) == []
    # With a focus, only pairs involving that episode are aligned.
    assert mine_templates(trajs, focus="e9") == []


def test_toolsmith_mines_validates_by_replay_and_offers_instantiations() -> None:
    smith = Toolsmith(InProcessToolRegistry(HashingEmbedder()), env_factory=kitchen)
    assert smith.observe("e0", "test:kitchen", KitchenEnv(0).walkthrough, True, seed=0) == []
    (tool,) = smith.observe("e1", "test:kitchen", KitchenEnv(1).walkthrough, True, seed=1)
    assert tool.name == "take_x__slice_x__prepare_meal"
    assert tool.slots == ["X"] and tool.status == "active"
    assert tool.validation is not None and "replayed on e0 (seed 0)" in tool.validation
    assert "seen with X=carrot; X=red apple" in tool.doc
    assert smith.counter.synthesized == 1

    env = KitchenEnv(2)
    obs = env.reset()
    offered = smith.offer("cook the meal", obs.admissible)
    calls = [t.call for t in offered]
    assert calls == [
        "take_x__slice_x__prepare_meal(X=carrot)",
        "take_x__slice_x__prepare_meal(X=red apple)",
        "take_x__slice_x__prepare_meal(X=yellow potato)",
    ]
    # Run the offered instantiation for this game's item as the executor would.
    chosen = next(t for t in offered if t.args == {"X": env.wanted})
    allowed, ran = obs.admissible, []
    for step in chosen.steps:
        act = resolve_step(step, allowed, chosen.slots)
        assert act is not None
        result = env.step(act)
        ran.append(act)
        allowed = result.admissible
    assert result.info.won and ran == ["take yellow potato", "slice yellow potato", "prepare meal"]
    assert Toolsmith(smith.registry).offer("cook", ["look"]) == []


def test_offer_can_be_switched_off_and_limits_bindings() -> None:
    reg = InProcessToolRegistry(HashingEmbedder())
    reg.register(
        Tool(
            name="t",
            kind="macro",
            doc="take and slice",
            steps=["take {X}", "slice {X}"],
            slots=["X"],
        )
    )
    admissible = [f"take item{i}" for i in range(9)]
    smith = Toolsmith(reg)
    assert len(smith.offer("slice", admissible)) == smith.config.max_bindings
    smith.config.offer = False
    assert smith.offer("slice", admissible) == []
    assert smith.counter.offers == 1  # steps with something offered


def test_template_with_ambiguous_later_slot_is_rejected_on_replay() -> None:
    from toolsmith import Trajectory, validate_macro

    traj = Trajectory(
        episode_id="e0", env_id="test:kitchen", seed=0, actions=KitchenEnv(0).walkthrough
    )
    # "look" binds nothing, so "take {X}" must pick one of three items at run time.
    tool = Tool(name="t", kind="macro", doc="d", steps=["look", "take {X}"], slots=["X"])
    verdict = validate_macro(tool, [traj], kitchen)
    assert not verdict.ok and "step 2 'take {X}' could not run" in verdict.note


def test_the_more_general_template_wins() -> None:
    def ep(item: str, place: str) -> list[list[str]]:
        return [[f"take {item} from {place}", f"cook {item} with stove", "take knife"]]

    trajs = [
        ("e1", ep("red potato", "counter")),
        ("e2", ep("yellow potato", "counter")),
        ("e3", ep("carrot", "fridge")),
    ]
    # "take {X} potato from counter" and "take {X} from counter" are special cases.
    (tpl,) = mine_templates(trajs)
    assert tpl.steps == ["take {X} from {Y}", "cook {X} with stove", "take knife"]
    assert len(tpl.instances) == 3 and tpl.support == ["e1", "e2", "e3"]


def test_registered_template_covers_later_special_cases_and_offer_ranks_by_context() -> None:
    smith = Toolsmith(InProcessToolRegistry(HashingEmbedder()), env_factory=kitchen)
    general = ["take {X}", "slice {X}", "prepare meal"]
    smith.registry.register(Tool(name="g", kind="macro", doc="cook", steps=general, slots=["X"]))
    smith.observe("e0", "test:kitchen", KitchenEnv(0).walkthrough, True, seed=0)
    # Its special case (and every instantiation) is not registered again.
    assert smith.observe("e1", "test:kitchen", KitchenEnv(1).walkthrough, True, seed=1) == []
    admissible = ["take carrot", "take red apple", "take yellow potato"]
    plain = smith.offer("cook", admissible)
    assert [t.args["X"] for t in plain] == ["carrot", "red apple", "yellow potato"]
    ranked = smith.offer("cook", admissible, context="The recipe needs a sliced Yellow Potato.")
    assert [t.args["X"] for t in ranked] == ["yellow potato", "carrot", "red apple"]
