from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from flanlab.cli import main
from flanlab.core.errors import UserError
from flanlab.tasks import bigbench
from flanlab.tasks.bigbench import (
    BigBenchFolder,
    BigBenchTarball,
    bbh_map,
    convert_examples,
    fetch_sdist,
    make_task,
    open_store,
)
from flanlab.tasks.task import render, render_example

MC = {
    "name": "tiny_mc", "description": "Pick the bigger number.", "keywords": ["arithmetic"],
    "task_prefix": "Compare numbers.\n", "example_input_prefix": "\nQuestion: ", "example_output_prefix": "\nAnswer: ",
    "examples": [{"input": f"Which is bigger, {i} or {i + 1}?", "target_scores": {str(i): 0, str(i + 1): 1}}
                 for i in range(20)],
}
GEN = {
    "name": "tiny_gen", "description": "Reverse the word.", "keywords": ["words"],
    "examples": [{"input": w, "target": [w[::-1], w[::-1].upper()]} for w in ["abc", "hello", "flan", "tea", "cup"]],
}
PARENT = {"name": "logical_deduction", "description": "parent of subtasks", "keywords": []}
SUB = {"name": "three_objects", "description": "order three things", "keywords": ["logic"],
       "examples": [{"input": f"puzzle {i}", "target_scores": {"A": int(i % 2 == 0), "B": int(i % 2 == 1)}}
                    for i in range(6)]}
TASKS = {"tiny_mc": MC, "tiny_gen": GEN, "logical_deduction": PARENT, "logical_deduction/three_objects": SUB}


@pytest.fixture
def bb_folder(tmp_path):
    root = tmp_path / "benchmark_tasks"
    for path, data in TASKS.items():
        (root / path).mkdir(parents=True, exist_ok=True)
        (root / path / "task.json").write_text(json.dumps(data), encoding="utf-8")
    return root


def write_sdist(path: Path) -> Path:
    """A tarball of TASKS with the sdist's layout (bigbench-1.0.0/bigbench/benchmark_tasks/...)."""
    with tarfile.open(path, "w:gz") as tf:
        for name, data in TASKS.items():
            blob = json.dumps(data).encode("utf-8")
            info = tarfile.TarInfo(f"bigbench-1.0.0/bigbench/benchmark_tasks/{name}/task.json")
            info.size = len(blob)
            tf.addfile(info, io.BytesIO(blob))
        readme = tarfile.TarInfo("bigbench-1.0.0/README.md")
        readme.size = 2
        tf.addfile(readme, io.BytesIO(b"hi"))
    return path


@pytest.fixture
def bb_tarball(tmp_path):
    return write_sdist(tmp_path / "bigbench-1.0.0.tar.gz")


def test_convert_multiple_choice_and_generation():
    mc = convert_examples(MC, "mc")
    assert mc[3]["options"] == ["3", "4"] and mc[3]["answer"] == "4"
    assert (mc[0]["task_prefix"], mc[0]["input_prefix"], mc[0]["output_prefix"]) == ("Compare numbers.", "Question:", "Answer:")
    gen = convert_examples(GEN, "gen")
    assert gen[1] == {**gen[1], "input": "hello", "answer": "olleh", "targets": ["olleh", "OLLEH"],
                      "input_prefix": "Q:", "output_prefix": "A:"}
    with pytest.raises(UserError, match=r"bad: examples\[0\]: missing field 'input'"):
        convert_examples({"examples": [{"target": "x"}]}, "bad")


@pytest.mark.parametrize("kind", ["folder", "tarball"])
def test_store_index_and_tasks(kind, bb_folder, bb_tarball):
    store = open_store(bb_folder if kind == "folder" else bb_tarball)
    assert isinstance(store, BigBenchFolder if kind == "folder" else BigBenchTarball)
    index = store.index()
    assert sorted(index) == ["logical_deduction/three_objects", "tiny_gen", "tiny_mc"]  # the parent has no examples
    assert index["tiny_mc"].task_type == "multiple_choice" and index["tiny_gen"].task_type == "generation"
    assert store.load("tiny_gen")["name"] == "tiny_gen"
    sub = make_task(index["logical_deduction/three_objects"], store)
    assert sub.name == "bigbench.logical_deduction.three_objects" and sub.heldout == ("bbh",)
    mc = make_task(index["tiny_mc"], store)
    assert mc.heldout == () and mc.formats() == ["zs_opt", "zs_noopt", "fs_opt", "fs_noopt"]
    train, val = list(mc.examples("train")), list(mc.examples("validation"))
    assert len(train) + len(val) == 20 and train and val
    assert {ex["input"] for ex in train}.isdisjoint(ex["input"] for ex in val)
    r = next(render(mc, "fs_opt", seed=1))
    assert r.exemplar_ids and r.targets
    gen = make_task(index["tiny_gen"], store)
    assert gen.formats() == ["zs_noopt", "fs_noopt"]


def test_tarball_index_is_cached(bb_tarball, monkeypatch, tmp_path):
    BigBenchTarball(bb_tarball).index()
    cache = bb_tarball.with_name(bb_tarball.name + ".index.json")
    assert cache.is_file()

    def no_scan(*args, **kwargs):
        raise AssertionError("the index should come from the cache")

    monkeypatch.setattr(BigBenchTarball, "iter_tasks", no_scan)
    assert len(BigBenchTarball(bb_tarball).index()) == 3
    # A task read once is cached beside the index and read from there afterwards.
    assert BigBenchTarball(bb_tarball).load("tiny_gen") == GEN
    assert list(tmp_path.glob("*.tasks/tiny_gen.json.gz"))
    monkeypatch.setattr(tarfile, "open", no_scan)
    assert BigBenchTarball(bb_tarball).load("tiny_gen") == GEN
    with pytest.raises(UserError, match="no BIG-bench JSON task 'nope'"):
        BigBenchTarball(bb_tarball).load("nope")


def test_bbh_map_covers_the_27_subtasks(shared_data):
    names = {p.stem for p in (shared_data / "bbh" / "tasks").glob("*.json")}
    assert set(bbh_map()) == names and len(names) == 27


@pytest.mark.slow
def test_real_sdist_lists_and_renders_every_task(capsys):
    sdist = fetch_sdist(download=False)
    if sdist is None:
        pytest.skip("BIG-bench sdist not in the cache (fetch: pip download --no-deps bigbench==1.0.0 "
                    "-d ~/.cache/flanlab/downloads)")
    assert main(["tasks", "list", "--source", "bigbench", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) >= 150
    assert {r["type"] for r in rows} == {"multiple_choice", "generation"}
    bbh_rows = {r["name"] for r in rows if "bbh" in r["heldout"]}
    # 24 of the 27 BBH subtasks are JSON tasks in BIG-bench (3 are programmatic).
    assert len(bbh_rows) == 24 and "bigbench.logical_deduction.five_objects" in bbh_rows
    store = BigBenchTarball(sdist)
    names = set()
    for info, data in store.iter_tasks():
        # The first 64 examples of every task keep this pass fast; conversion of whole tasks is
        # covered by the fixtures above.
        task = make_task(info, None, {**data, "examples": data["examples"][:64]})
        names.add(task.name)
        split = "train" if next(task.source.records("train"), None) else "validation"
        example = next(task.examples(split))
        # Every shipped template of the task's family, in every format it serves.
        for template in task.family.templates:
            for fmt in set(template.formats) & set(task.formats()):
                inputs, targets = render_example(task, template, example, fmt)
                assert inputs and targets is not None
        for fmt in task.formats():
            assert next(render(task, fmt, split=split, seed=0)).inputs
    assert names == {r["name"] for r in rows}


def test_module_has_no_heavy_imports():
    assert "torch" not in vars(bigbench)


def test_records_at_yields_the_marked_records_as_records_does():
    """The mixture's selected view jumps to marked records; it must yield exactly what filtering
    ``records`` would (same where-strings, same rows, same order)."""
    import random

    from flanlab.tasks.bigbench import BigBenchSource

    source = BigBenchSource(None, "tiny_mc", data=MC)
    for split in source.splits():
        every = list(source.records(split))
        for seed in range(5):
            rng = random.Random(seed)
            keep = bytearray(rng.random() < 0.4 for _ in range(len(every) + 3))
            assert list(source.records_at(split, keep)) == [r for i, r in enumerate(every) if keep[i]]
    with pytest.raises(Exception, match="no split"):
        list(source.records_at("test", bytearray(3)))


def _full_split(data, name):
    """The reference: the whole task.json converted and split in memory."""
    split = {"train": [], "validation": []}
    for ex in convert_examples(data, name):
        split[bigbench.split_of(ex)].append(ex)
    return split


def _assert_same_records(records: bigbench.TaskRecords, split: dict) -> None:
    for name, rows in split.items():
        assert records.count(name) == len(rows)
        for i, row in enumerate(rows):
            got = records.get(name, i)
            # Same fields in the same order with the same values (what templates and hashes see).
            assert list(got.items()) == list(row.items())


def test_record_files_hold_the_full_conversion(bb_tarball):
    store = BigBenchTarball(bb_tarball)
    for path in store.index():
        records = store.task_records(path)
        _assert_same_records(records, _full_split(store.load(path), f"bigbench:{path}"))
    folder = store.records_folder()
    assert folder.name.startswith(f"{bb_tarball.name}.records-{store.sha256()[:16]}-{bigbench.converter_version()}")
    assert len(list(folder.glob("*.rec"))) == 3
    # Opening a task again reads its record file (no task.json read) ...
    reopened = BigBenchTarball(bb_tarball)
    reopened.load = None  # type: ignore[assignment]
    for path in store.index():
        _assert_same_records(reopened.task_records(path), _full_split(store.load(path), f"bigbench:{path}"))
    # ... and a damaged one is converted again.
    file = folder / "tiny_mc.rec"
    file.write_bytes(file.read_bytes()[:-5])
    _assert_same_records(BigBenchTarball(bb_tarball).task_records("tiny_mc"), _full_split(MC, "bigbench:tiny_mc"))


def test_record_files_are_read_from_the_file_whatever_their_header(tmp_path):
    """A record file opened from disk reads each example from the file: the same records as the
    bytes held in memory, a header over the first 64 KiB read included, from several threads at
    once; a cut file is refused."""
    from concurrent.futures import ThreadPoolExecutor

    stamp = {"sdist_sha256": "test", "converter": "x", "path": "tiny_mc"}
    for prefix in ("Compare numbers.\n", "Compare numbers. " * 5000):  # the second: a 90 KB header
        data = {**MC, "task_prefix": prefix}
        blob = bigbench.encode_records(data, "bigbench:tiny_mc", stamp)
        file = tmp_path / "tiny_mc.rec"
        file.write_bytes(blob)
        records = bigbench.TaskRecords.open(file)
        assert records.stamp == stamp and records.common == bigbench.TaskRecords(blob, "memory").common
        assert records.common["task_prefix"].startswith("Compare numbers.")
        _assert_same_records(records, _full_split(data, "bigbench:tiny_mc"))
        with ThreadPoolExecutor(4) as pool:  # reads from several threads at once
            n = records.count("train")
            got = list(pool.map(records.get, ["train"] * 400, [i % n for i in range(400)]))
        assert got == [records.get("train", i % n) for i in range(400)]
        file.write_bytes(blob[:-5])
        with pytest.raises(ValueError, match="truncated record file"):
            bigbench.TaskRecords.open(file)
        file.write_bytes(blob[: len(blob) // 2 if len(blob) > 80_000 else 40])
        with pytest.raises(ValueError, match="truncated record file"):
            bigbench.TaskRecords.open(file)


@pytest.mark.parametrize("fmt", ["zs_opt", "fs_opt", "fs_noopt"])
def test_lazy_records_render_as_the_full_conversion(bb_tarball, fmt):
    from flanlab.tasks.budget import WhitespaceCounter

    store = BigBenchTarball(bb_tarball)
    info = store.index()["tiny_mc"]
    lazy, full = make_task(info, store), make_task(info, None, MC)
    assert isinstance(lazy.exemplar_pool(), bigbench.LazyExamples)
    assert list(lazy.exemplar_pool()) == [ex for _, ex in full.records("train")]
    for split in ("train", "validation"):
        assert list(lazy.records(split)) == list(full.records(split))
        keep = bytearray([1, 0, 0, 1, 1] * 4)
        assert list(lazy.source.records_at(split, keep)) == list(full.source.records_at(split, keep))
        for tok in (None, WhitespaceCounter()):
            assert list(render(lazy, fmt, split=split, seed=3, tokenizer=tok)) == \
                list(render(full, fmt, split=split, seed=3, tokenizer=tok))


@pytest.mark.slow
def test_record_files_match_full_conversion_on_real_tasks(tmp_path):
    """Every task.json of the real sdist: its record file (as streams read it) holds exactly what
    converting the whole file gives, example by example."""
    sdist = fetch_sdist(download=False)
    if sdist is None:
        pytest.skip("BIG-bench sdist not in the cache")
    store = BigBenchTarball(sdist)
    stamp = {"sdist_sha256": "test", "converter": bigbench.converter_version()}
    n_tasks = n_examples = 0
    for info, data in store.iter_tasks():
        where = f"bigbench:{info.path}"
        try:
            split = _full_split(data, where)
        except UserError:
            with pytest.raises(UserError):
                bigbench.encode_records(data, where, stamp)
            continue
        records = bigbench.TaskRecords(bigbench.encode_records(data, where, {**stamp, "path": info.path}), where)
        _assert_same_records(records, split)
        n_tasks += 1
        n_examples += sum(len(rows) for rows in split.values())
    assert n_tasks >= 900 and n_examples > 100_000
