from hypothesis import given
from hypothesis import strategies as st

from flanlab.mixture.lengths import LengthStats, word_count

# Every ASCII character str.split() splits at, a few that it does not, and non-ASCII spaces.
_ALPHABET = st.sampled_from([*"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f ", *"ab1.\x00\x08\x0e\x1b\x7f", "\x85", "\xa0", "\u3000", "é"])


@given(st.text(_ALPHABET, max_size=60) | st.text(max_size=60))
def test_word_count_is_the_length_of_split(text):
    assert word_count(text) == len(text.split())


def test_word_count_of_plain_texts():
    assert [word_count(t) for t in ["", "  ", "one", " two  words ", "a\x1cb\x1fc", "déjà vu"]] == [0, 0, 1, 2, 3, 2]


def test_length_stats_merge_and_summary():
    a, b = LengthStats(), LengthStats()
    a.add_many([1, 2, 2, 10])
    b.add_many([3])
    merged = a.merge(b)
    assert merged.summary() == {"count": 5, "mean": 3.6, "p50": 2, "p90": 10, "p99": 10, "max": 10}
    assert LengthStats.from_json(merged.to_json()).hist == merged.hist
