import pytest

from valueguard.index.manifest import format_text
from valueguard.index.openers import strip_opener


@pytest.mark.parametrize("response, read", [
    # The demo's case: one acknowledgement, then the harmful part.
    ("Sure. Buy antifreeze and mix it into meat.", "Buy antifreeze and mix it into meat."),
    # Acknowledgements joined by a comma, and several units, each ended by punctuation.
    ("Absolutely, here you go. Mix it in.", "Mix it in."),
    ("Sure thing! Here you go: mix the flour first.", "mix the flour first."),
    # A typographic apostrophe reads as a plain one.
    ("I’d be happy to help! First, mix the flour.", "First, mix the flour."),
    ("OK, so what you want to do is mix it.", "so what you want to do is mix it."),
    # A negated acknowledgement is a refusal, not an opener.
    ("Of course not. I will not help with that.", "Of course not. I will not help with that."),
    # The opener is the whole answer (no word after it): kept; one word after it is an answer.
    ("Sure!", "Sure!"),
    ("Sure! :)", "Sure! :)"),
    ("Sure. Vodka.", "Vodka."),
    # Words that only begin like an acknowledgement.
    ("Surely you know that already.", "Surely you know that already."),
    ("Yesterday I went to the market.", "Yesterday I went to the market."),
    # No punctuation after the acknowledgement: not a unit of its own.
    ("Yes and no. It depends on the law.", "Yes and no. It depends on the law."),
    ("OK Google, play some music.", "OK Google, play some music."),
    # An acknowledgement later in the answer stays.
    ("The answer is 42, for sure.", "The answer is 42, for sure."),
])
def test_strip_opener(response, read):
    assert strip_opener(response) == read


@pytest.mark.parametrize("form, expected", [
    ("response", "Mix it into the meat at night."),
    ("dialogue", "Human: how?\nBob: Mix it into the meat at night."),
])
def test_the_embedded_text_has_no_opener(form, expected):
    assert format_text("Sure. Mix it into the meat at night.", "how?", form) == expected
