from __future__ import annotations

import random

from flanlab.tasks.options import OptionStyle, deterministic_style, label, random_style, render_options
from flanlab.tasks.task import render


def test_deterministic_flan_rendering():
    block = render_options(["a", "b"], deterministic_style())
    assert block.text == "OPTIONS:\n- a\n- b"
    assert block.target_for(["a", "b"], "b") == "b"


def test_labels():
    assert [label("upper", i) for i in (0, 1, 25, 26)] == ["A", "B", "Z", "AA"]
    assert [label("roman", i) for i in range(5)] == ["i", "ii", "iii", "iv", "v"]
    assert label("roman_upper", 8) == "IX"
    assert label("number", 2) == "3"
    assert label("lower", 1) == "b"


def test_labelled_style_turns_target_into_label():
    style = OptionStyle(header="Options:", header_separator=" ", marker="({label}) ", labels="upper",
                        separator=" ", target="({label})")
    block = render_options(["yes", "no", "maybe"], style)
    assert block.text == "Options: (A) yes (B) no (C) maybe"
    assert block.target_for(["yes", "no", "maybe"], "maybe") == "(C)"


def test_random_styles_vary_and_are_seeded():
    styles = {random_style(random.Random(s)) for s in range(200)}
    assert len({s.header for s in styles}) >= 10
    assert {s.labels for s in styles} >= {"none", "upper", "lower", "roman", "number"}
    assert {s.separator for s in styles} == {"\n", " "}
    assert random_style(random.Random(7)) == random_style(random.Random(7))


def test_render_uses_label_targets_per_example(mc_task):
    rendered = list(render(mc_task, "zs_opt", seed=1))
    labelled = [r for r in rendered if r.targets not in ("yes", "no")]
    plain = [r for r in rendered if r.targets in ("yes", "no")]
    assert labelled and plain  # styles drawn per example: both kinds occur in 12 examples
    for r in labelled:
        # The label target appears in the input, right before the option text it labels.
        assert r.targets.rstrip(".") in r.inputs
    flan = list(render(mc_task, "zs_opt", seed=1, option_styles="flan"))
    assert all("OPTIONS:\n- yes\n- no" in r.inputs and r.targets in ("yes", "no") for r in flan)


def test_noopt_formats_hide_options(mc_task):
    for r in render(mc_task, "zs_noopt"):
        assert "yes\n" not in r.inputs and "OPTIONS" not in r.inputs
        assert r.targets in ("yes", "no")


def test_skip_random_style_makes_the_same_draws():
    import random

    from flanlab.tasks.options import random_style, skip_random_style

    for seed in range(50):
        a, b = random.Random(seed), random.Random(seed)
        random_style(a)
        skip_random_style(b)
        assert a.getstate() == b.getstate()
