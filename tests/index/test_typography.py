import pytest

from valueguard.index.manifest import format_text
from valueguard.index.typography import plain_typography


@pytest.mark.parametrize("text, read", [
    # The confounded marks: the curly apostrophe (794 of 1,686 benign anchors) and curly double quotes.
    ("neighbour’s dog, it’s easy", "neighbour's dog, it's easy"),
    ("he said “now” and ‘then’", "he said \"now\" and 'then'"),
    # Dashes, the ellipsis and the fraction slash of a recipe.
    ("wait – then go — fast…", "wait - then go - fast..."),
    ("1⁄2 cup of butter", "1/2 cup of butter"),
    ("20\u00a0minutes", "20 minutes"),
    # Letters with accents and other scripts say something else in ASCII: kept.
    ("café, Ñandú, 能", "café, Ñandú, 能"),
    # Plain ASCII is unchanged.
    ("It's \"fine\" - really...", "It's \"fine\" - really..."),
])
def test_plain_typography(text, read):
    assert plain_typography(text) == read


@pytest.mark.parametrize("form, expected", [
    ("response", "Mix it into your neighbour's meat."),
    # The prompt of the dialogue form is read the same way.
    ("dialogue", "Human: it's \"safe\"?\nBob: Mix it into your neighbour's meat."),
])
def test_the_embedded_text_has_ascii_punctuation(form, expected):
    # The opener is taken off after the apostrophe is made plain: both cuts apply together.
    assert format_text("Sure. Mix it into your neighbour’s meat.", "it’s “safe”?", form) == expected
