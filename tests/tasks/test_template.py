from __future__ import annotations

import pytest

from flanlab.tasks.formats import COT_FORMATS, FORMATS, cot_target
from flanlab.tasks.sandbox import TemplateError
from flanlab.tasks.template import builtin_families, builtin_family, load_family, parse_family

GOOD = """\
family: demo
fields: [question, answer]
templates:
  - inputs: "{{ question }}"
    targets: "{{ answer }}"
  - id: demo:second
    inputs: "Q: {{ question }}"
    targets: "{{ answer }}"
    formats: [zs_noopt]
"""


def test_parse_family(tmp_path):
    path = tmp_path / "demo.yaml"
    path.write_text(GOOD, encoding="utf-8")
    fam = load_family(path)
    assert [t.id for t in fam.templates] == ["demo:0", "demo:second"]
    assert fam.templates[0].formats == FORMATS
    assert fam.for_format("fs_opt") == [fam.templates[0]]
    assert fam.lines == (4, 6)


def test_unknown_placeholder_names_file_template_and_field(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(GOOD.replace('"Q: {{ question }}"', '"Q: {{ questoin }}"'), encoding="utf-8")
    with pytest.raises(TemplateError) as e:
        load_family(path)
    msg = str(e.value)
    assert str(path) in msg and "template 1" in msg and "line 6" in msg and "'questoin'" in msg


def test_validate_against_task_fields():
    fam = parse_family(GOOD, "demo.yaml")
    with pytest.raises(TemplateError, match=r"demo.yaml: template 0 .*'answer'.*task 'x'"):
        fam.validate(["question"], task="x")


@pytest.mark.parametrize("broken, expected", [
    (GOOD.replace('    targets: "{{ answer }}"\n  - id', "  - id"), "template 0 .*missing field 'targets'"),
    (GOOD.replace("[zs_noopt]", "[zs_sometimes]"), "template 1 .*unknown format 'zs_sometimes'"),
    (GOOD.replace("fields:", "feilds:"), "missing required key 'fields'"),
    (GOOD.replace('"{{ question }}"', '"{{ question "'), "template 0 .*syntax error"),
    ("family: x\nfields: []\ntemplates: [", "invalid YAML"),
])
def test_bad_family_files(broken, expected):
    with pytest.raises(TemplateError, match=expected):
        parse_family(broken, "f.yaml")


def test_not_utf8_family(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(GOOD.replace("Q:", "Q\xe9:").encode("latin-1"))
    with pytest.raises(TemplateError, match=r"latin1.yaml: not UTF-8"):
        load_family(path)


def test_shipped_families():
    assert {"cot", "bigbench_mc", "bigbench_gen"} <= set(builtin_families())
    for name in ("bigbench_mc", "bigbench_gen"):
        assert len(builtin_family(name).templates) >= 10
    cot = builtin_family("cot")
    assert set(cot.formats()) >= set(COT_FORMATS) | {"zs_noopt", "fs_noopt"}
    assert sum(t.kind == "inversion" for t in cot.templates) >= 4


def test_cot_target_shape():
    assert cot_target(" 2 + 2 is 4. ", "4.") == "2 + 2 is 4. The answer is 4."


def test_fast_yaml_loader_reads_every_shipped_yaml_file_as_safe_load_does():
    # Families and collection files are parsed with libyaml when PyYAML has it (YAML_LOADER): the
    # data, and so every rendered byte, must be what the pure-Python safe loader gives.
    from importlib import resources
    from pathlib import Path

    import yaml

    from flanlab.tasks.template import YAML_LOADER

    root = Path(str(resources.files("flanlab")))
    files = sorted(root.rglob("*.yaml"))
    assert len(files) > 20
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert yaml.load(text, Loader=YAML_LOADER) == yaml.safe_load(text), path  # noqa: S506
