from __future__ import annotations

import pytest

from flanlab.core.errors import UserError
from flanlab.tasks.sandbox import TemplateError, placeholders, render


def test_render_and_placeholders():
    text = "Q: {{ question }}{% if options_ %}\n{{ options_ }}{% endif %}"
    assert render(text, {"question": "why?", "options_": ""}) == "Q: why?"
    assert render(text, {"question": "why?", "options_": "OPTIONS:\n- a"}) == "Q: why?\nOPTIONS:\n- a"
    assert placeholders(text) == {"question", "options_"}
    assert placeholders("{% for o in options %}{{ o }}{% endfor %}") == {"options"}


def test_missing_field_is_an_error_not_empty_text():
    with pytest.raises(TemplateError, match="unknown field"):
        render("{{ question }} {{ answr }}", {"question": "q"})


@pytest.mark.parametrize("text", [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ question.__class__.__init__.__globals__ }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
])
def test_sandbox_blocks_python_internals(text):
    with pytest.raises(UserError):
        render(text, {"question": "q", "cycler": None})


def test_syntax_error_names_the_line():
    with pytest.raises(TemplateError, match="line 2"):
        placeholders("ok\n{{ broken ")


def _shipped_template_texts() -> list[str]:
    """Every Jinja text in the package's YAML data (task families, collection families, benchmarks)."""
    from pathlib import Path

    import yaml

    import flanlab

    texts: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
        elif isinstance(node, str) and ("{{" in node or "{%" in node):
            texts.add(node)

    for path in sorted(Path(flanlab.__file__).parent.rglob("*.yaml")):
        walk(yaml.safe_load(path.read_text(encoding="utf-8")))
    return sorted(texts)


def _sandboxed(text, fields):
    from flanlab.tasks.sandbox import compile_template

    return compile_template(text).render(dict(fields))


def _assert_same(text, fields):
    try:
        expected = _sandboxed(text, fields)
    except Exception:  # noqa: BLE001 - e.g. control flow over a value of the wrong kind: both must fail
        with pytest.raises(TemplateError):
            render(text, fields)
        return
    assert render(text, fields) == expected, text


# Values of every kind a source row may hold, with the characters str.format and Jinja treat specially.
_VALUES = ["plain", "", "braces {0} {} {{x}} }{", "line\r\nbreaks\n\n", "ünïcödé ✓ 数学", 7, 2.5, None, True,
           ["a", "b"], {"k": "v"}]


def test_substitution_fast_path_matches_the_sandbox_on_every_shipped_template():
    from flanlab.tasks.sandbox import placeholders, substitution

    texts = _shipped_template_texts()
    assert len(texts) > 100
    fast = [t for t in texts if substitution(t) is not None]
    # Most shipped templates are pure substitutions (the fast path is the common case).
    assert len(fast) > len(texts) // 2
    for text in texts:
        names = sorted(placeholders(text))
        for k in range(len(_VALUES)):
            # Each field gets a different value, rotating through the kinds.
            fields = {n: _VALUES[(k + j) % len(_VALUES)] for j, n in enumerate(names)}
            fields.setdefault("options_", "OPTIONS:\n- a\n- b")
            _assert_same(text, fields)


@pytest.mark.parametrize("text,fast", [
    ("Q: {{ question }}\nA:", True),
    ("{{question}}{{ answer }}", True),
    ("line\r\nend {{ x }}\r", True),       # Jinja normalises newlines in literal text: so does the pattern
    ("{ literal } {{ x }} }}", True),
    ("", True),
    ("{{ x|upper }}", False),
    ("{{ x.y }}", False),
    ("{{ 'c' }}", False),
    ("{% if x %}{{ x }}{% endif %}", False),
    ("a  {{- x -}}  y", True),              # whitespace control: already applied in the parse tree
    ("{# note #}{{ x }}", True),           # a comment outputs nothing
])
def test_substitution_detects_pure_placeholders(text, fast):
    from flanlab.tasks.sandbox import substitution

    assert (substitution(text) is not None) == fast
    _assert_same(text, {"x": "v}{", "question": "q", "answer": "a"})


def test_fast_path_keeps_the_sandbox_errors():
    # A missing field still names it; a Jinja global is not a field (the sandbox decides).
    with pytest.raises(TemplateError, match="unknown field"):
        render("Q: {{ question }} {{ answr }}", {"question": "q"})
    assert render("{{ x }}", {"x": "y", "range": 1}) == "y"
    assert render("{{ range }}", {}) == _sandboxed("{{ range }}", {})


@pytest.mark.parametrize("text,fast", [
    ("{{ input }}{% if options_ %}\n{{ options_ }}{% endif %}\nA:", True),
    ("{% if a %}x{{ a }}{% else %}y {{ b }}{% endif %} z", True),
    ("{% if a %}{% if b %}{{ b }}{% endif %}{% endif %}", True),
    ("{% if a %}x{% elif b %}y{% endif %}", False),
    ("{% if a == 'x' %}x{% endif %}", False),
    ("{% if a %}{{ a|upper }}{% endif %}", False),
    ("{% for o in a %}{{ o }}{% endfor %}", False),
])
def test_conditional_fast_path_matches_the_sandbox(text, fast):
    from flanlab.tasks.sandbox import conditional

    assert (conditional(text) is not None) == fast
    for a in ["", "v}{", None, 0, 3, [], ["x"], True, False]:
        for b in ["", "w", None]:
            _assert_same(text, {"a": a, "b": b})
    with pytest.raises(TemplateError, match="unknown field"):
        render(text, {"b": "w"} if "a" in text else {})


def test_shipped_option_templates_take_the_conditional_fast_path():
    from flanlab.tasks.sandbox import conditional, substitution

    texts = [t for t in _shipped_template_texts() if substitution(t) is None]
    # The `{% if options_ %}` templates (BIG-bench's among them) skip the sandbox; every shipped
    # template, fast or not, renders as the sandbox does (test above).
    assert sum(conditional(t) is not None for t in texts) >= 10
