import numpy as np
import pytest

from valueguard.values.lists import REFINED_VALUES, VALUE_ITEMS
from valueguard.values import BASIC_VALUES, VALUE_NAMES, ValueVector, basic_value_of


def test_basic_values_fixed_order_with_definitions():
    assert VALUE_NAMES == (
        "self_direction", "stimulation", "hedonism", "achievement", "power",
        "security", "tradition", "conformity", "benevolence", "universalism",
    )
    assert all(v.definition.endswith(".") and len(v.definition) > 20 for v in BASIC_VALUES)


def test_fulcra_lists_are_complete_and_map_into_the_basic_values():
    assert len(REFINED_VALUES) == 19
    assert len(VALUE_ITEMS) == 54
    assert set(REFINED_VALUES.values()) == set(VALUE_NAMES)
    assert {basic for basic, _ in VALUE_ITEMS.values()} == set(VALUE_NAMES)
    assert all(refined in REFINED_VALUES for _, refined in VALUE_ITEMS.values())


@pytest.mark.parametrize("name, basic", [
    ("humility", "conformity"),            # refined value named in the issue
    ("Face", "power"),                     # refined value, capitalised as FULCRA writes it
    ("Self-Direction", "self_direction"),  # a basic value in label spelling
    ("self direction", "self_direction"),  # spaces instead of a hyphen
    ("Universalism-nature", "universalism"),
    ("be honest", "benevolence"),          # a value item, lower case as in value_items
    ("Observing social norms", "security"),  # FULCRA's item table, not its refined value (face)
    ("have social recognition", "power"),  # an alias the annotators used, not among the 54
    ("benevolense", None),                 # misspelling: unknown, never guessed
])
def test_basic_value_of(name, basic):
    assert basic_value_of(name) == basic


def test_value_vector_named_access_and_round_trips():
    v = ValueVector.from_dict({"power": -0.5, "benevolence": 1.0}, missing=0.0)
    assert v["power"] == -0.5 and v.benevolence == 1.0 and v["self-direction"] == 0.0
    assert ValueVector.from_dict(v.to_dict()) == v
    assert ValueVector(v.to_array()) == v
    assert v.to_array().dtype == np.float32 and list(v) == list(VALUE_NAMES)
    assert v.most_negative() == ("power", -0.5)


@pytest.mark.parametrize("build, message", [
    (lambda: ValueVector([0.0] * 9), "has 10 scores"),
    (lambda: ValueVector([0.0] * 9 + [1.5]), "universalism=1.5"),
    (lambda: ValueVector([0.0] * 9 + [float("nan")]), "finite"),
    (lambda: ValueVector.from_dict({"powr": 1.0}, missing=0.0), "unknown value name"),
    (lambda: ValueVector.from_dict({"power": 1.0}), "missing value"),
])
def test_value_vector_refuses_bad_input(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_value_vector_clips_float_noise_only():
    assert ValueVector([1.0 + 1e-7] + [0.0] * 9)["self_direction"] == 1.0
    with pytest.raises(KeyError, match="unknown value name"):
        ValueVector.zeros()["kindness"]
