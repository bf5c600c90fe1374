"""The shipped Flan 2022 manifest: 1,836 tasks, the paper's counts, nothing from a held-out benchmark."""

from __future__ import annotations

import json
import re

import pytest

from flanlab.core.errors import UserError
from flanlab.tasks.collection.build_manifest import build_manifest, dump_manifest, load_rules
from flanlab.tasks.collection.manifest import LADDER, ManifestError, load_manifest, parse_manifest

HELDOUT = re.compile(r"mmlu|mmmlu|hendrycks|bbh|bigbench|big_bench|tydi|mgsm", re.IGNORECASE)


def test_manifest_counts_match_the_paper():
    m = load_manifest()
    assert len(m) == 1836
    assert m.counts() == {"muffin": 80, "t0sf": 193, "niv2": 1554, "cot": 9}
    assert len({t.name for t in m.tasks}) == 1836
    # Every Muffin task comes with its inversion (or dialog/code counterpart), as in the CSV.
    assert all(len(t.variants) == 1 for t in m.select(collections=["muffin"]))
    assert all(len(t.variants) == 3 for t in m.select(collections=["cot"]))


def test_no_heldout_benchmark_source():
    m = load_manifest()
    bad = [t.name for t in m.tasks if HELDOUT.search(t.dataset) or HELDOUT.search(t.name)]
    assert bad == []
    # The MMLU tasks of NIv2 are absent; the two dropped tasks are recorded with reasons.
    assert not [t for t in m.tasks if "mmmlu" in t.name]
    assert [e["name"] for e in m.excluded] == ["niv2/task062_bigbench_repeat_copy_logic",
                                               "niv2/task1404_date_conversion"]


def test_ladder_and_categories():
    m = load_manifest()
    assert {n: len(m.select(size=n)) for n in LADDER} == {9: 9, 89: 89, 282: 282, 1836: 1836}
    nli = m.select(categories=["natural language inference"], collections=["muffin"])
    assert {"muffin/anli_r1", "muffin/rte", "muffin/mnli_matched", "muffin/mnli_mismatched"} <= {t.name for t in nli}
    assert m.get("t0sf/cos_e_v1.11_i_think").dataset == "cos_e"
    assert m.get("muffin/wmt16_translate_deen").languages == ("English", "German")
    assert [t.name for t in m.select(names=["niv2/task001_*"])] == ["niv2/task001_quoref_question_generation"]
    with pytest.raises(UserError, match="ladder"):
        m.select(size=100)
    with pytest.raises(UserError, match="did you mean"):
        m.get("muffin/anli_r4")


def test_manifest_regenerates_from_the_csv(shared_data):
    csv_path = shared_data / "flan_cot" / "flan_collection_info.csv"
    built = build_manifest(csv_path)
    shipped = load_manifest()
    assert built["provenance"]["csv_sha256"] == shipped.provenance["csv_sha256"]
    # The shipped file is byte-for-byte what the builder writes from the CSV.
    from importlib import resources

    text = resources.files("flanlab.tasks.collection").joinpath("data/flan2022_manifest.json").read_text("utf-8")
    assert dump_manifest(built) == text
    assert [t["name"] for t in built["tasks"]] == [t.name for t in shipped.tasks]


def test_builder_rejects_a_changed_csv(tmp_path):
    header = "Source,Dataset,Specific Task Category,Generic Task Category,Languages\n"
    bad = tmp_path / "info.csv"
    bad.write_text(header + "FLAN,rte,Natural Language Inference,Natural Language Inference,English\n")
    with pytest.raises(UserError, match="differ from the paper"):
        build_manifest(bad)
    bad.write_text(header + "Mystery,x,y,z,English\n")
    with pytest.raises(UserError, match=r"info.csv:2: unknown Source 'Mystery'"):
        build_manifest(bad)
    bad.write_text("a,b\n1,2\n")
    with pytest.raises(UserError, match="expected the header"):
        build_manifest(bad)
    rules = load_rules()
    assert rules["paper_counts"]["total"] == 1836


def test_malformed_manifest_names_the_field(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"tasks": [{"name": "muffin/x", "collection": "muffin"}]}))
    with pytest.raises(ManifestError, match=r"m.json: tasks\[0\]: field 'submixture'"):
        load_manifest(path)
    item = {"name": "x/y", "collection": "x", "submixture": "s", "source": "S", "dataset": "d",
            "category": "c", "languages": []}
    with pytest.raises(ManifestError, match="field 'collection'"):
        parse_manifest({"tasks": [item]})
