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
