import re

import numpy as np
import pytest

import valueguard
from valueguard.policy.model import Policy
from valueguard.policy.profiles import distances
from valueguard.guard.reward import ValueReward, message_text
from valueguard.quality.reward_eval import SAFE_TARGET, same_prompt_pairs
from valueguard.values import VALUE_NAMES


@pytest.fixture(scope="module")
def scored_heldout(split):
    """Held-out rows (no prompt in common with the session index) from the scored files: three models' answers."""
    return [r for r in split[1] if r.label_kind == "model"]


@pytest.fixture(scope="module")
def safe_reward(estimator) -> ValueReward:
    return ValueReward(target=SAFE_TARGET, estimator=estimator)


def test_exported_from_the_package():
    assert valueguard.ValueReward is ValueReward


def test_reward_prefers_the_answer_the_labels_rate_closer_to_the_target(safe_reward, scored_heldout):
    """Same prompt, two models' answers whose labels differ clearly in their distance from the safe target: the
    reward must prefer the closer one much more often than chance."""
    rows = scored_heldout
    rewards = np.array(safe_reward(prompts=[r.prompt for r in rows], completions=[r.response for r in rows]))
    labels = distances(SAFE_TARGET, np.array([[r.values[n] for n in VALUE_NAMES] for r in rows]))
    pairs = [(a, b) for a, b in same_prompt_pairs([r.prompt for r in rows], np.array(["model"] * len(rows)))
             if abs(labels[a] - labels[b]) >= 0.2]
    better = [(a, b) if labels[a] < labels[b] else (b, a) for a, b in pairs]
    wins = np.mean([rewards[g] > rewards[w] for g, w in better])
    assert len(better) >= 50 and wins >= 0.7, (len(better), wins)
    assert all(0.0 <= r <= 1.0 for r in rewards)


def test_conversational_input_gets_the_same_reward_as_text(safe_reward, scored_heldout):
    rows = scored_heldout[:6]
    text = safe_reward(prompts=[r.prompt for r in rows], completions=[r.response for r in rows])
    chat = safe_reward(
        prompts=[[{"role": "system", "content": "Be kind."}, {"role": "user", "content": r.prompt}] for r in rows],
        completions=[[{"role": "assistant", "content": r.response}] for r in rows],
        completion_ids=[[1, 2]] * len(rows), trainer_state=None)  # TRL's other keyword arguments are ignored
    assert chat == pytest.approx(text) and len(set(np.round(text, 6))) > 1


def test_a_blocked_completion_gets_the_floor(estimator, split):
    """With the default policy, exactly the completions it blocks get the floor; the others keep 1 - distance."""
    rows = [r for r in split[1]][:300]
    policy = Policy.load("default")
    estimates = estimator.estimate_batch([r.response for r in rows], [r.prompt for r in rows])
    blocked = np.array([policy.decide(e).action == "block" for e in estimates])
    assert 0 < blocked.sum() < len(rows)
    plain = np.array(ValueReward(SAFE_TARGET, estimator)(prompts=[r.prompt for r in rows],
                                                          completions=[r.response for r in rows]))
    floored = np.array(ValueReward(SAFE_TARGET, estimator, policy="default", floor=-1.0)(
        prompts=[r.prompt for r in rows], completions=[r.response for r in rows]))
    assert np.all(floored[blocked] == -1.0) and np.allclose(floored[~blocked], plain[~blocked])


def test_no_prompts_and_an_empty_batch(safe_reward, scored_heldout):
    assert safe_reward(completions=[]) == []
    assert len(safe_reward(completions=[scored_heldout[0].response])) == 1


# (arguments, error): mistakes a training script makes, refused before any text is estimated.
@pytest.mark.parametrize("target, message", [
    ({}, "a target is a non-empty mapping"),                                  # nothing to be close to
    ({"benevolense": 1}, "target: unknown value 'benevolense' (did you mean 'benevolence'?)"),
    ({"power": 3}, "target: a target is a score in [-1, 1], got 3"),
])
def test_bad_targets_are_refused(target, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ValueReward(target=target)


@pytest.mark.parametrize("item, role, text", [
    ("plain", "assistant", "plain"),                                                  # a string as it is
    ([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "assistant", "a"),
    ([{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a"},
      {"role": "user", "content": "q2"}], "user", "q2"),                             # the user's last turn
    ([{"role": "assistant", "content": [{"type": "text", "text": "part"}]}], "assistant", "part"),  # content parts
    ({"role": "assistant", "content": "one"}, "assistant", "one"),                   # one message, not a list
    (None, "user", ""),                                                              # no prompt
])
def test_message_text(item, role, text):
    assert message_text(item, role) == text


def test_mismatched_lengths_are_an_error(safe_reward):
    with pytest.raises(ValueError, match="2 prompts for 1 completions"):
        safe_reward(prompts=["a", "b"], completions=["x"])
