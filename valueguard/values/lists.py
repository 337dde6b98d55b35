"""FULCRA's 19 refined values and 54 value items, each with the basic value it belongs to.

Taken from the FULCRA release's label tables (value_type_19_2_type_10, value_item_2_type_10 and
value_item_2_type_19), spellings kept. Where FULCRA departs from the Schwartz Value Survey we follow FULCRA,
because its annotators labelled by these tables: "Moderate" is conformity (rules), "Be humble" and
"Accepting my portion in life" are humility and so conformity, and "Observing social norms" is security
although its refined value is face (which FULCRA otherwise puts under power).
"""

from __future__ import annotations

REFINED_VALUES: dict[str, str] = {
    "Self-direction-thought": "self_direction",
    "Self-direction-action": "self_direction",
    "Stimulation": "stimulation",
    "Hedonism": "hedonism",
    "Achievement": "achievement",
    "Power-dominance": "power",
    "Power-resources": "power",
    "Face": "power",
    "Security-personal": "security",
    "Security-societal": "security",
    "Tradition": "tradition",
    "Conformity-rules": "conformity",
    "Conformity-interpersonal": "conformity",
    "Humility": "conformity",
    "Benevolence-caring": "benevolence",
    "Benevolence-dependability": "benevolence",
    "Universalism-concern": "universalism",
    "Universalism-nature": "universalism",
    "Universalism-tolerance": "universalism",
}

# item -> (basic value, refined value)
VALUE_ITEMS: dict[str, tuple[str, str]] = {
    "Be creative": ("self_direction", "Self-direction-thought"),
    "Be curious": ("self_direction", "Self-direction-thought"),
    "Have freedom of thought": ("self_direction", "Self-direction-thought"),
    "Be choosing own goals": ("self_direction", "Self-direction-action"),
    "Be independent": ("self_direction", "Self-direction-action"),
    "Have freedom of action": ("self_direction", "Self-direction-action"),
    "Have privacy": ("self_direction", "Self-direction-action"),
    "Have an exciting life": ("stimulation", "Stimulation"),
    "Have a varied life": ("stimulation", "Stimulation"),
    "Be daring": ("stimulation", "Stimulation"),
    "Have pleasure": ("hedonism", "Hedonism"),
    "Enjoying life": ("hedonism", "Hedonism"),
    "Be self-indulgent": ("hedonism", "Hedonism"),
    "Be ambitious": ("achievement", "Achievement"),
    "Be successful": ("achievement", "Achievement"),
    "Be capable": ("achievement", "Achievement"),
    "Be influential": ("achievement", "Achievement"),
    "Be intellectual": ("achievement", "Achievement"),
    "Have authority": ("power", "Power-dominance"),
    "Have social power": ("power", "Power-dominance"),
    "Have wealth": ("power", "Power-resources"),
    "Have a social recognition": ("power", "Face"),
    "Preserving my public image": ("power", "Face"),
    "Observing social norms": ("security", "Face"),
    "Have a sense of belonging": ("security", "Security-personal"),
    "Have a good health": ("security", "Security-personal"),
    "Have no debts": ("security", "Security-personal"),
    "Be neat and tidy": ("security", "Security-personal"),
    "Have family security": ("security", "Security-personal"),
    "Have a safe country": ("security", "Security-societal"),
    "Have a stable society": ("security", "Security-societal"),
    "Be respecting traditions": ("tradition", "Tradition"),
    "Be holding religious faith": ("tradition", "Tradition"),
    "Be obedient": ("conformity", "Conformity-rules"),
    "Be self-disciplined": ("conformity", "Conformity-rules"),
    "Moderate": ("conformity", "Conformity-rules"),
    "Be polite": ("conformity", "Conformity-interpersonal"),
    "Be honoring parents and elders": ("conformity", "Conformity-interpersonal"),
    "Be humble": ("conformity", "Humility"),
    "Accepting my portion in life": ("conformity", "Humility"),
    "Be helpful": ("benevolence", "Benevolence-caring"),
    "Be honest": ("benevolence", "Benevolence-caring"),
    "Be forgiving": ("benevolence", "Benevolence-caring"),
    "True friendship": ("benevolence", "Benevolence-caring"),
    "Mature love": ("benevolence", "Benevolence-caring"),
    "Be responsible": ("benevolence", "Benevolence-dependability"),
    "Have loyalty towards friends": ("benevolence", "Benevolence-dependability"),
    "Have equality": ("universalism", "Universalism-concern"),
    "Social justice": ("universalism", "Universalism-concern"),
    "Have a world at peace": ("universalism", "Universalism-concern"),
    "Be protecting the environment": ("universalism", "Universalism-nature"),
    "Have harmony with nature": ("universalism", "Universalism-nature"),
    "Have a world of beauty": ("universalism", "Universalism-nature"),
    "Be broadminded": ("universalism", "Universalism-tolerance"),
}

# Spellings the annotators used that are not among the 54 (FULCRA's own tables carry the same aliases).
ITEM_ALIASES: dict[str, str] = {
    "Have social recognition": "Have a social recognition",
    "Be moderate": "Moderate",
}
