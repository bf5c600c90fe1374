"""Untrusted content: templates cannot run code, read files or exhaust the machine; example fields
are data, never templates; remote code and pickled weights are refused unless allowed, and the
refusal says how to allow them — without the refused code ever running."""

from __future__ import annotations

import json
import shutil

import pytest

from flanlab.cli import main
from flanlab.core.errors import UserError
from flanlab.tasks.sandbox import render

# Known server-side template injection payloads (Jinja2 sandbox escapes and resource bombs).
ESCAPES = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ ''.__class__.__base__.__subclasses__()[104].__init__.__globals__['sys'].modules['os'].popen('touch {m}') }}",
    "{{ self.__init__.__globals__.__builtins__.open('{secret}').read() }}",
    "{{ self._TemplateReference__context.environment }}",
    "{{ lipsum.__globals__['os'].popen('touch {m}').read() }}",
    "{{ cycler.__init__.__globals__.os.popen('touch {m}').read() }}",
    "{{ joiner.__init__.__globals__.os.system('touch {m}') }}",
    "{{ namespace.__init__.__globals__.os.system('touch {m}') }}",
    "{{ question|attr('__class__')|attr('__mro__') }}",
    "{{ question|attr('\\x5f\\x5fclass\\x5f\\x5f') }}",
    "{{ '{0.__class__.__init__.__globals__}'.format(question) }}",
    "{{ question.__class__.__init__.__globals__ }}",
    "{% set x = question.__class__ %}{{ x.__subclasses__() }}",
    "{{ request.application.__globals__.__builtins__.__import__('os').popen('touch {m}') }}",
    "{{ config.items() }}",
    "{% include '{secret}' %}",
    "{% import 'os' as os %}{{ os.system('touch {m}') }}",
    "{% extends '{secret}' %}",
    "{% from 'subprocess' import call %}{{ call(['touch', '{m}']) }}",
    "{% for x in range(10**12) %}{% endfor %}",
    "{{ 'a' * 10**10 }}",
    "{{ [0] * 10**10 }}",
    "{{ 10**(10**10) }}",  # Jinja's ** is left-associative: 10**10**10 is only 10**100
    "{{ 2**(2**40) }}",
]


@pytest.mark.parametrize("payload", ESCAPES)
def test_templates_cannot_run_code_or_read_files(payload, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT", encoding="utf-8")
    marker = tmp_path / "pwned"
    text = payload.replace("{m}", str(marker)).replace("{secret}", str(secret))
    with pytest.raises(UserError) as info:
        render(text, {"question": "What is 2+2?"})
    assert "template" in str(info.value)
    assert not marker.exists()
    assert "TOP-SECRET" not in str(info.value)


@pytest.mark.parametrize("field", [
    "{{ 7*7 }}", "{% include '/etc/passwd' %}", "{{ ''.__class__ }}", "{#", "{% raw %}", "}}{{",
])
def test_example_fields_are_data_not_templates(field):
    """Injection through the data: a field holding template syntax is printed as it is."""
    assert render("Q: {{ question }}\nA:", {"question": field}) == f"Q: {field}\nA:"


def _custom_code_model(tiny_llama_dir, tmp_path, marker):
    folder = tmp_path / "custom"
    shutil.copytree(tiny_llama_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(model_type="flanlab_custom", auto_map={"AutoConfig": "configuration_custom.CustomConfig",
                                                          "AutoModelForCausalLM": "modeling_custom.Model"})
    (folder / "config.json").write_text(json.dumps(config))
    code = f"open({str(marker)!r}, 'w').write('ran')\n"
    (folder / "configuration_custom.py").write_text(code + "from transformers import LlamaConfig as CustomConfig\n")
    (folder / "modeling_custom.py").write_text(code + "from transformers import LlamaForCausalLM as Model\n")
    return folder


def test_remote_code_is_refused_by_default_and_never_runs(tiny_llama_dir, tmp_path, capsys):
    marker = tmp_path / "remote-code-ran"
    folder = _custom_code_model(tiny_llama_dir, tmp_path, marker)
    assert main(["serve", "--model", str(folder), "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert "ships its own code" in err and "trust_remote_code=true" in err and "Traceback" not in err
    assert not marker.exists()
    # eval and train read the same model section, off unless the config turns it on
    from flanlab.evaluation.config import EvalConfig
    from flanlab.training.config import TrainConfig

    for schema in (EvalConfig, TrainConfig):
        spec = schema.model_fields["model"].annotation.model_fields
        assert spec["trust_remote_code"].default is False and spec["allow_pickle"].default is False


def test_pickled_weights_are_refused_and_never_unpickled(tiny_llama_dir, tmp_path, capsys, mmlu_data):
    import pickle

    marker = tmp_path / "pickle-ran"
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_llama_dir, folder)
    (folder / "model.safetensors").unlink()

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    with open(folder / "pytorch_model.bin", "wb") as f:
        pickle.dump({"model.embed_tokens.weight": Payload()}, f)
    rc = main(["eval", "--model", str(folder), "--data-dir", str(mmlu_data), "--benchmarks", "mmlu",
               "--strategies", "direct", "--limit", "1", "--runs-dir", str(tmp_path / "runs")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "allow_pickle=true" in err and "no safetensors weights" in err and "Traceback" not in err
    assert not marker.exists()
