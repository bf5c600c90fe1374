"""The mixture build's fast paths render what the straightforward ones render, on the real Flan CoT
data: budget checks from cached piece counts (vs counting every joined text with the tokenizer),
partial passes from a task's kept records (vs streaming its source), stream lines built from
json's string encoder (vs json.dumps of each row)."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path

import pytest

from flanlab.tasks.formats import Budget
from flanlab.tasks.task import render

SMOLLM2 = Path.home() / ".cache" / "flanlab" / "models" / "smollm2-135m"


class _ExactCounter:
    """The straightforward counter: every question answered by tokenizing the whole text."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def upper(self, text: str) -> int:
        return self.count(text)

    def fits(self, text: str, n: int) -> bool:
        return self.count(text) <= n

    def truncate(self, text: str, n: int) -> str:
        from flanlab.tasks.budget import HFCounter

        return HFCounter(self.tokenizer).truncate(text, n)


@pytest.fixture(scope="module")
def smollm2():
    if not (SMOLLM2 / "tokenizer.json").is_file():
        pytest.skip("smollm2-135m is not cached (`flanlab models`)")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(SMOLLM2))


def _task(shared_data, name):
    from flanlab.mixture.catalog import _catalog

    return _catalog(str(shared_data)).get(name)  # a fresh task object: empty caches


@pytest.mark.parametrize("budget", [Budget(), Budget(inputs=700, targets=120, fewshot_inputs=450)])
def test_budget_fast_path_renders_what_exact_counting_renders(shared_data, smollm2, budget):
    # The default budgets (long prompts over the byte bound are counted) and tight ones (exemplars
    # dropped, queries and targets truncated) on two tasks, both few-shot formats.
    from flanlab.tasks.budget import HFCounter

    fast = HFCounter(smollm2)
    assert fast._split is not None  # the cached pre-token path is the one under test
    exact = _ExactCounter(smollm2)
    dropped = 0
    for name in ("cot_gsm8k", "cot_ecqa"):
        for fmt in ("fs_cot", "fs_noopt"):
            kw = {"seed": 3, "budget": budget, "limit": 150}
            got = list(render(_task(shared_data, name), fmt, tokenizer=fast, **kw))
            want = list(render(_task(shared_data, name), fmt, tokenizer=exact, **kw))
            assert got == want
            dropped += sum(len(r.exemplar_ids) < 3 for r in want)
    if budget.fewshot_inputs < 1000:
        assert dropped > 50  # the tight budget really drops exemplars


def test_partial_pass_from_kept_records_equals_streaming_the_source(shared_data):
    from flanlab.mixture.catalog import _RECENT, _Selected, iter_task

    name, split = "cot_creak", "train"
    size = len(_task(shared_data, name).train_records())
    rng = random.Random(0)
    keep = bytearray(rng.random() < 0.3 for _ in range(size))
    _RECENT.clear()
    for fmt in ("zs_noopt", "fs_cot"):
        got = [tuple(r) for r in iter_task(name, fmt, split, 11, str(shared_data), keep)]
        # The reference streams the source through the selection, as before records were kept.
        task = _task(shared_data, name)
        pool = {"pool": list(task.exemplar_pool())} if fmt.startswith("fs") else {}
        view = dataclasses.replace(task, source=_Selected(task.source, split, keep), _pool=pool)
        want = [(r.inputs, r.targets, r.template_id) for r in render(view, fmt, split=split, seed=11)]
        assert got == want and len(got) == sum(keep)


def test_stream_lines_are_json_dumps_of_their_rows(tmp_path, shared_data):
    from flanlab.core.config import load_config
    from flanlab.mixture.build import build_mixture
    from flanlab.mixture.config import MixtureConfig

    cfg = tmp_path / "mix.yaml"
    cfg.write_text("# flanlab mix mix.yaml --out OUT\nkind: mixture\nname: cot\nseed: 1\nshard_size: 300\n"
                   "members:\n  - {task: \"cot_*\"}\n", encoding="utf-8")
    out = tmp_path / "out"
    build_mixture(load_config(cfg, (), schema=MixtureConfig), out, config_path=cfg, examples=800,
                  data_dir=shared_data)
    lines = [line for p in sorted(out.glob("shard-*.jsonl")) for line in p.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 800
    for line in lines:
        assert json.dumps(json.loads(line), ensure_ascii=False) == line


@pytest.mark.parametrize("kept_bytes", [None, 1500])
def test_bigbench_rows_kept_once_read_render_as_rows_read_each_time(tmp_path, monkeypatch, kept_bytes):
    # A BIG-bench task read from its record file: queries and exemplars from _KeptRows (each row parsed
    # and fingerprinted once) render exactly as rows read anew on every access, over two passes; also
    # when the kept rows are forgotten every few rows (a bound on their texts' memory).
    from flanlab.mixture import catalog
    from flanlab.mixture.catalog import _KeptRows, _Selected

    if kept_bytes is not None:
        monkeypatch.setattr(catalog, "_KEPT_BYTES", kept_bytes)
    from flanlab.tasks.bigbench import make_task as bigbench_task
    from flanlab.tasks.bigbench import open_store
    from tests.tasks.test_bigbench import write_sdist

    store = open_store(write_sdist(tmp_path / "bigbench-1.0.0.tar.gz"))
    info = store.index()["tiny_mc"]
    size = bigbench_task(info, store).source.count("train")
    keep = bytearray(i % 3 != 1 for i in range(size))
    kept_task = bigbench_task(info, store)
    rows = _KeptRows(kept_task._pool["pool"])
    for fmt in ("zs_opt", "fs_opt", "fs_noopt"):
        for seed in (1, 2):
            fast = dataclasses.replace(kept_task, source=_Selected(kept_task.source, "train", keep, rows),
                                       _pool={"pool": rows})
            fresh = bigbench_task(info, store)
            slow = dataclasses.replace(fresh, source=_Selected(fresh.source, "train", keep),
                                       _pool={"pool": fresh._pool["pool"]})  # the whole split, read lazily
            got, want = list(render(fast, fmt, seed=seed)), list(render(slow, fmt, seed=seed))
            assert got == want and len(got) == sum(keep)
    assert rows.kept and rows[0] is rows[0] and rows.fingerprints  # rows and fingerprints were kept
    assert rows.held <= catalog._KEPT_BYTES and (kept_bytes is None or len(rows.kept) < size / 2)


@pytest.mark.parametrize("fmt", ["fs_opt", "fs_noopt", "zs_opt"])
def test_rendering_without_ids_renders_the_same_texts(fmt):
    # ids=False (mixtures) fingerprints an exemplar only when it may equal its query; the texts are
    # those of ids=True, here on a task whose training split repeats examples (exemplars equal to their
    # query in content must stay out either way).
    from flanlab.tasks.bigbench import _info_from
    from flanlab.tasks.bigbench import make_task as bigbench_task
    from tests.tasks.test_bigbench import MC

    data = {**MC, "examples": MC["examples"] * 3}
    info = _info_from("tiny_mc", data)
    full = list(render(bigbench_task(info, None, data), fmt, seed=4, shots=12))
    bare = list(render(bigbench_task(info, None, data), fmt, seed=4, shots=12, ids=False))
    assert [(r.inputs, r.targets, r.template_id) for r in bare] == [(r.inputs, r.targets, r.template_id) for r in full]
    assert all(r.example_id == "" and r.exemplar_ids == () for r in bare)
    if fmt.startswith("fs"):
        # Every query has copies in the pool: none of its exemplars is one, and some were drawn and left out.
        assert all(r.example_id not in r.exemplar_ids for r in full)
        assert any(len(r.exemplar_ids) < 12 for r in full)
