"""Benchmarks: read examples (local data dir or the hub) and build each strategy's prompt.

Every benchmark reads its rows either from a local folder in the layout of ``../shared/data`` or
from the hub with ``datasets.load_dataset``; hub rows are first converted to the local row layout,
so both go through the same example-building code. Prompt strings come from
``data/benchmarks/NAME.yaml`` and render in the sandbox (:mod:`flanlab.tasks.sandbox`).
"""

from __future__ import annotations

import csv
import json
import re
import statistics
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from flanlab.core.errors import UserError
from flanlab.core.registry import Registry
from flanlab.evaluation.filters import apply_filter
from flanlab.evaluation.metrics import exact_match, numeric_match, squad_em, squad_f1
from flanlab.evaluation.specs import DATA, BenchmarkSpec, StrategySpec, load_benchmark_spec, read_data_yaml
from flanlab.tasks.sandbox import render

__all__ = ["BENCHMARKS", "Benchmark", "DataError", "Example", "MissingDataError", "Prompt", "get_benchmark",
           "malformed_data"]


class DataError(UserError, ValueError):
    """Benchmark data missing or malformed; the message names the file (and line) and what was expected."""


class MissingDataError(DataError):
    """A file or folder of a benchmark is not in the data dir (a run of several benchmarks skips it)."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


@dataclass(frozen=True)
class Example:
    """One test item: ``index`` is its position in the subtask's own file order."""

    subtask: str
    index: int
    fields: dict[str, Any]
    target: str
    golds: tuple[str, ...] = ()


@dataclass(frozen=True)
class Prompt:
    """What to send: a generation prompt, or a context with continuations to score."""

    text: str
    continuations: tuple[str, ...] = ()


BENCHMARKS: Registry[type[Benchmark]] = Registry("benchmark")


@contextmanager
def malformed_data(bench: str, what: str, data_dir: Path | None) -> Iterator[None]:
    """Turn a failure deep in a loader (wrong encoding, bad JSON, a row of the wrong shape) into a
    :class:`DataError` naming the benchmark, what was being read and the data dir."""
    try:
        yield
    except UserError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError, IndexError,
            ValueError, csv.Error) as e:
        where = data_dir if data_dir is not None else "the hub"
        raise DataError(f"{bench}: malformed data for {what} in {where}: {type(e).__name__}: {e} "
                        "(expected the layout of ../shared/data, UTF-8)") from None


def get_benchmark(name: str, data_dir: Path | None) -> Benchmark:
    """An instance of benchmark ``name`` reading from ``data_dir`` (None: the hub)."""
    return BENCHMARKS.get(name)(data_dir)


def _hub_rows(spec: BenchmarkSpec, config: str | None, split: str) -> list[dict[str, Any]]:
    try:
        import datasets
    except ImportError as e:  # pragma: no cover - datasets is a dependency
        raise DataError(f"reading {spec.name} from the hub needs the datasets package ({e})") from None
    try:
        ds = datasets.load_dataset(spec.hub.path, config, split=split)
    except Exception as e:
        raise DataError(
            f"{spec.name}: cannot load {spec.hub.path} ({config or 'default'}, {split}) from the hub: {e}; "
            "pass --data-dir with a local copy instead") from None
    return [dict(r) for r in ds]


class Benchmark(ABC):
    """Base class: subclasses read rows and build prompts; scoring follows the spec's metric."""

    name: str = ""

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.spec = load_benchmark_spec(self.spec_name)
        self._cache: dict[str, list[Example]] = {}

    spec_name = ""

    # -- data ---------------------------------------------------------------------------------
    def local(self, *parts: str) -> Path:
        """A path under the data dir; a missing file is a DataError naming it."""
        assert self.data_dir is not None
        path = self.data_dir.joinpath(*parts)
        if not path.exists():
            get = f"; get it from {self.spec.get.replace('DATA', str(self.data_dir))}" if self.spec.get else ""
            raise MissingDataError(f"{self.name}: {path} not found (expected the layout of ../shared/data{get})",
                                   path)
        return path

    @abstractmethod
    def subtasks(self) -> list[str]:
        """The benchmark's subtasks (subjects, languages, ...), in a stable order."""

    def default_subtasks(self) -> list[str]:
        return self.subtasks()

    @abstractmethod
    def load(self, subtask: str) -> list[Example]:
        """Read one subtask's scored examples, in file order."""

    def examples(self, subtask: str) -> list[Example]:
        """The subtask's scored examples, in file order (cached)."""
        if subtask not in self._cache:
            if subtask not in self.subtasks():
                raise DataError(f"{self.name}: unknown subtask {subtask!r}; known: {', '.join(self.subtasks())}")
            with malformed_data(self.name, f"subtask {subtask!r}", self.data_dir):
                self._cache[subtask] = self.load(subtask)
        return self._cache[subtask]

    # -- prompts ------------------------------------------------------------------------------
    def template(self, key: str, **fields: Any) -> str:
        try:
            text = self.spec.templates[key]
        except KeyError:
            raise DataError(f"{DATA}/benchmarks/{self.spec_name}.yaml: templates.{key} is missing") from None
        return render(text, fields)

    def supports(self, style: str) -> bool:
        return style in self.spec.styles

    @abstractmethod
    def prompt(self, example: Example, strategy: StrategySpec) -> Prompt:
        """The prompt (or context and continuations) ``strategy`` sends for ``example``."""

    def uses_loglikelihood(self, strategy: StrategySpec) -> bool:
        """Whether ``strategy`` is scored by log-likelihood of options on this benchmark."""
        return False

    # -- scoring ------------------------------------------------------------------------------
    def extract(self, output: str, style: str) -> str | None:
        """The answer in one raw output (after stop-cutting), by the style's filter."""
        return apply_filter(self.spec.styles[style].filter, output)

    def score(self, answer: str | None, example: Example) -> dict[str, float]:
        """Per-example metrics; ``correct`` is the headline one."""
        metric = self.spec.metric
        if metric == "squad":
            golds = example.golds or (example.target,)
            return {"correct": squad_em(answer, golds), "f1": squad_f1(answer, golds)}
        if metric == "numeric":
            return {"correct": float(numeric_match(answer, example.target))}
        return {"correct": float(exact_match(answer, example.target))}

    def aggregate(self, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Scores in percent: per subtask, and the headline ``score`` (mean over subtasks)."""
        by: dict[str, list[dict[str, Any]]] = {}
        for r in records:
            by.setdefault(r["subtask"], []).append(r)
        per = {s: 100.0 * statistics.fmean(r["correct"] for r in rs) for s, rs in sorted(by.items())}
        out: dict[str, Any] = {
            "score": statistics.fmean(per.values()) if per else None,
            "n": len(records),
            "subtasks": per,
        }
        if self.spec.metric == "squad" and records:
            f1 = {s: 100.0 * statistics.fmean(r.get("f1", 0.0) for r in rs) for s, rs in sorted(by.items())}
            out["f1"] = statistics.fmean(f1.values())
            out["subtasks_f1"] = f1
        return out


# ---------------------------------------------------------------------------------------------
# MMLU


@BENCHMARKS.decorator("mmlu")
class MMLU(Benchmark):
    """MMLU: the Hendrycks 5-shot prompt; the Flan CoT exemplars for CoT."""

    name = spec_name = "mmlu"

    @cached_property
    def categories(self) -> dict[str, str]:
        raw = read_data_yaml(DATA / "mmlu_categories.yaml")
        return {str(k): str(v) for k, v in raw.items()}

    def subtasks(self) -> list[str]:
        if self.data_dir is None:
            return sorted(self.categories)
        return sorted(p.name[: -len("_test.csv")] for p in self.local("mmlu", "test").glob("*_test.csv"))

    def _rows(self, subject: str, split: str) -> list[dict[str, Any]]:
        if self.data_dir is None:
            hub_split = self.spec.hub.test_split if split == "test" else (self.spec.hub.dev_split or "dev")
            return [hub_row_mmlu(r) for r in _hub_rows(self.spec, subject, hub_split)]
        path = self.local("mmlu", split, f"{subject}_{split}.csv")
        rows = []
        with open(path, encoding="utf-8", newline="") as f:
            for line, rec in enumerate(csv.reader(f), 1):
                if len(rec) != 6 or rec[5].strip() not in self.spec.letters:
                    raise DataError(f"{path}:{line}: expected 6 columns question,A,B,C,D,answer-letter; got {rec!r:.120}")
                rows.append({"question": rec[0], "choices": rec[1:5], "answer": rec[5].strip()})
        return rows

    def load(self, subtask: str) -> list[Example]:
        return [
            Example(subtask, i, {"question": r["question"], "choices": r["choices"]}, r["answer"])
            for i, r in enumerate(self._rows(subtask, "test"))
        ]

    @cached_property
    def _cot_prompts(self) -> dict[str, str]:
        if self.data_dir is None:
            raise DataError("mmlu cot needs the Flan MMLU CoT exemplars: pass --data-dir with mmlu/flan_cot_prompts.json")
        path = self.local("mmlu", "flan_cot_prompts.json")
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected a mapping subject -> prompt text")
        return data

    def _dev(self, subject: str) -> list[dict[str, Any]]:
        key = f"dev:{subject}"
        if key not in self.__dict__:
            self.__dict__[key] = self._rows(subject, "dev")
        return self.__dict__[key]

    def _choices(self, example_choices: Sequence[str]) -> list[tuple[str, str]]:
        return list(zip(self.spec.letters, example_choices, strict=True))

    def uses_loglikelihood(self, strategy: StrategySpec) -> bool:
        return strategy.style == "direct" and strategy.mode in ("auto", "loglikelihood")

    def prompt(self, example: Example, strategy: StrategySpec) -> Prompt:
        subject = example.subtask
        header = self.template("header", subject=subject.replace("_", " "))
        q, choices = example.fields["question"], self._choices(example.fields["choices"])
        if strategy.style == "direct":
            shots = ""
            if strategy.exemplars:
                for row in self._dev(subject):
                    block = self.template("question", question=row["question"], choices=self._choices(row["choices"]))
                    shots += self.template("exemplar", block=block, answer=row["answer"])
            text = header + shots + self.template("question", question=q, choices=choices)
            conts = tuple(self.template("continuation", letter=letter) for letter in self.spec.letters)
            return Prompt(text, conts if self.uses_loglikelihood(strategy) else ())
        query = self.template("cot_question", question=q, choices=choices)
        if strategy.exemplars:
            try:
                prefix = self._cot_prompts[subject]
            except KeyError:
                raise DataError(f"mmlu/flan_cot_prompts.json has no prompt for subject {subject!r}") from None
            return Prompt(prefix + query)
        return Prompt(header + query)

    def aggregate(self, records: Sequence[dict[str, Any]]) -> dict[str, Any]:
        out = super().aggregate(records)
        if not records:
            return out
        out["subject_average"] = out["score"]
        out["score"] = 100.0 * statistics.fmean(r["correct"] for r in records)  # question-weighted
        cats: dict[str, list[float]] = {}
        for r in records:
            cats.setdefault(self.categories.get(r["subtask"], "other"), []).append(r["correct"])
        out["categories"] = {c: 100.0 * statistics.fmean(v) for c, v in sorted(cats.items())}
        return out


def hub_row_mmlu(row: dict[str, Any]) -> dict[str, Any]:
    """cais/mmlu row (question, choices, answer index) → the local row layout."""
    answer = row["answer"]
    letter = "ABCD"[answer] if isinstance(answer, int) else str(answer)
    return {"question": row["question"], "choices": list(row["choices"]), "answer": letter}


# ---------------------------------------------------------------------------------------------
# BBH

_BBH_COT = re.compile(r"^Q: (?P<q>.*?)\nA: Let's think step by step\.[ \n](?P<r>.*)$", re.S)


@dataclass(frozen=True)
class BBHPrompt:
    """An official BBH prompt file, split into its description and exemplars."""

    description: str
    exemplars: tuple[str, ...]
    questions: tuple[str, ...] = field(default=())
    answers: tuple[str, ...] = field(default=())


def parse_bbh_prompt(text: str, source: str = "<bbh prompt>") -> BBHPrompt:
    """Split an official ``cot-prompts/NAME.txt``: canary line, ``-----``, description, exemplars."""
    head, sep, body = text.partition("-----\n")
    if not sep:
        raise DataError(f"{source}: expected a canary line then '-----' before the task description")
    body = body.rstrip("\n")
    parts = body.split("\n\nQ: ")
    description, exemplars = parts[0], tuple("Q: " + p for p in parts[1:])
    if not exemplars:
        raise DataError(f"{source}: no 'Q: ...' exemplars after the task description")
    questions, answers = [], []
    for i, ex in enumerate(exemplars, 1):
        m = _BBH_COT.match(ex)
        if not m:
            raise DataError(f"{source}: exemplar {i} lacks \"\\nA: Let's think step by step.\" after its question")
        answer = apply_filter("answer_is", m.group("r"))
        if answer is None:
            raise DataError(f"{source}: exemplar {i} has no 'So the answer is ...' sentence")
        questions.append(m.group("q"))
        # Keep the answer as the exemplar wrote it ("(D)"), not letter-unwrapped.
        raw = re.findall(r"(?i)the answer is\s*(.*?)(?:\.(?:\s|$)|\n|$)", m.group("r"))[-1].strip()
        answers.append(raw)
    return BBHPrompt(description, exemplars, tuple(questions), tuple(answers))


@BENCHMARKS.decorator("bbh")
class BBH(Benchmark):
    """BIG-Bench Hard with the official prompt files."""

    name = spec_name = "bbh"

    def subtasks(self) -> list[str]:
        if self.data_dir is None:
            return list(self.spec.all_subtasks)
        return sorted(p.stem for p in self.local("bbh", "tasks").glob("*.json"))

    def load(self, subtask: str) -> list[Example]:
        if self.data_dir is None:
            rows = _hub_rows(self.spec, subtask, self.spec.hub.test_split)
            source = f"{self.spec.hub.path}/{subtask}"
        else:
            path = self.local("bbh", "tasks", f"{subtask}.json")
            source = str(path)
            data = json.loads(path.read_text(encoding="utf-8"))
            rows = data.get("examples") if isinstance(data, dict) else None
            if not isinstance(rows, list):
                raise DataError(f"{path}: expected {{'examples': [{{'input', 'target'}}, ...]}}")
        out = []
        for i, r in enumerate(rows):
            if "input" not in r or "target" not in r:
                raise DataError(f"{source}: example {i} lacks 'input' or 'target'")
            out.append(Example(subtask, i, {"input": r["input"]}, str(r["target"])))
        return out

    def official_prompt(self, subtask: str) -> BBHPrompt:
        key = f"prompt:{subtask}"
        if key not in self.__dict__:
            if self.data_dir is None:
                raise DataError("bbh needs the official prompt files: pass --data-dir with bbh/cot-prompts/")
            path = self.local("bbh", "cot-prompts", f"{subtask}.txt")
            self.__dict__[key] = parse_bbh_prompt(path.read_text(encoding="utf-8"), str(path))
        return self.__dict__[key]

    def prompt(self, example: Example, strategy: StrategySpec) -> Prompt:
        official = self.official_prompt(example.subtask)
        joiner = self.spec.templates["joiner"]
        inp = example.fields["input"]
        if strategy.style == "direct":
            shots = [self.template("direct_exemplar", question=q, answer=a)
                     for q, a in zip(official.questions, official.answers, strict=True)]
            query = self.template("direct_query", input=inp)
        else:
            shots = list(official.exemplars)
            query = self.template("cot_query", input=inp)
        if not strategy.exemplars:
            shots = []
        return Prompt(joiner.join([official.description, *shots, query]))


# ---------------------------------------------------------------------------------------------
# GSM8K


@BENCHMARKS.decorator("gsm8k")
class GSM8K(Benchmark):
    """GSM8K test with the 8 standard CoT exemplars."""

    name = spec_name = "gsm8k"

    def subtasks(self) -> list[str]:
        return ["main"]

    def load(self, subtask: str) -> list[Example]:
        if self.data_dir is None:
            rows = _hub_rows(self.spec, self.spec.hub.config, self.spec.hub.test_split)
            source = self.spec.hub.path
        else:
            path = self.local("gsm8k", "test.jsonl")
            source = str(path)
            rows = []
            # Lines end at \n only (str.splitlines() also splits inside strings, at U+2028 and the like).
            for line, text in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
                if text.strip():
                    try:
                        rows.append(json.loads(text))
                    except json.JSONDecodeError as e:
                        raise DataError(f"{path}:{line}: invalid JSON ({e.msg})") from None
        out = []
        for i, r in enumerate(rows):
            answer = str(r.get("answer", ""))
            if "####" not in answer:
                raise DataError(f"{source}: row {i + 1}: answer does not end with '#### N'")
            target = answer.rsplit("####", 1)[1].strip().replace(",", "")
            out.append(Example(subtask, i, {"question": r["question"]}, target))
        return out

    @cached_property
    def exemplars(self) -> list[dict[str, str]]:
        path = DATA / "gsm8k_exemplars.yaml"
        raw = read_data_yaml(path)
        ex = raw.get("exemplars") if isinstance(raw, dict) else None
        if not isinstance(ex, list) or not all(isinstance(e, dict) and {"question", "reasoning", "answer"} <= set(e)
                                               for e in ex):
            raise DataError(f"{path}: expected exemplars: [{{question, reasoning, answer}}, ...]")
        return ex

    def prompt(self, example: Example, strategy: StrategySpec) -> Prompt:
        q = example.fields["question"]
        if strategy.style == "zs_cot":
            return Prompt(self.template("zs_query", question=q))
        kind = "cot_exemplar" if strategy.style == "cot" else "direct_exemplar"
        shots = [self.template(kind, **e) for e in self.exemplars] if strategy.exemplars else []
        return Prompt(self.spec.templates["joiner"].join([*shots, self.template("query", question=q)]))


# ---------------------------------------------------------------------------------------------
# MGSM


@BENCHMARKS.decorator("mgsm")
class MGSM(Benchmark):
    """MGSM with native-language exemplars."""

    name = spec_name = "mgsm"
    exemplar_language: str | None = None  # None: native

    def subtasks(self) -> list[str]:
        """The languages (with a local data dir: those with an ``mgsm_LANG.tsv``)."""
        if self.data_dir is None:
            return sorted(self.spec.languages)
        langs = [lang for lang in sorted(self.spec.languages) if (self.data_dir / "mgsm" / f"mgsm_{lang}.tsv").exists()]
        if not langs:
            self.local("mgsm", "mgsm_en.tsv")  # raises, naming the folder expected
        return langs

    def load(self, subtask: str) -> list[Example]:
        if self.data_dir is None:
            rows = [{"question": r["question"], "answer": str(r["answer_number"])}
                    for r in _hub_rows(self.spec, subtask, self.spec.hub.test_split)]
        else:
            path = self.local("mgsm", f"mgsm_{subtask}.tsv")
            rows = []
            with open(path, encoding="utf-8", newline="") as f:
                for line, rec in enumerate(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE), 1):
                    if len(rec) != 2:
                        raise DataError(f"{path}:{line}: expected question<TAB>answer, got {len(rec)} fields")
                    rows.append({"question": rec[0], "answer": rec[1]})
        return [Example(subtask, i, {"question": r["question"]}, r["answer"].strip()) for i, r in enumerate(rows)]

    @cached_property
    def _exemplar_file(self) -> dict[str, Any]:
        if self.data_dir is None:
            return {}
        path = self.local("mgsm", "exemplars.json")
        data = json.loads(path.read_text(encoding="utf-8"))
        if "MGSM_EXEMPLARS" not in data or "EXEMPLAR_NUMBER_ANSWERS" not in data:
            raise DataError(f"{path}: expected keys MGSM_EXEMPLARS and EXEMPLAR_NUMBER_ANSWERS")
        return data

    def exemplars(self, lang: str) -> list[dict[str, str]]:
        """The 8 exemplars of ``lang``: ``q`` and ``a`` with their prefixes, and ``answer``."""
        key = f"ex:{lang}"
        if key in self.__dict__:
            return self.__dict__[key]
        if self.data_dir is None:
            rows = _hub_rows(self.spec, lang, self.spec.hub.dev_split or "train")
            ex = [{"q": r["question"], "a": r["answer"], "answer": str(r["answer_number"])} for r in rows]
        else:
            data = self._exemplar_file
            by_lang = data["MGSM_EXEMPLARS"].get(lang)
            if by_lang is None:
                raise DataError(f"mgsm/exemplars.json has no exemplars for language {lang!r}")
            numbers = data["EXEMPLAR_NUMBER_ANSWERS"]
            ex = [{"q": by_lang[str(i)]["q"], "a": by_lang[str(i)]["a"], "answer": str(numbers[i - 1])}
                  for i in range(1, len(numbers) + 1)]
        prefixes = self.spec.languages[lang]
        for i, e in enumerate(ex, 1):
            if not e["q"].startswith(prefixes.question):
                raise DataError(f"mgsm exemplar {i} ({lang}) does not start with {prefixes.question!r}")
        self.__dict__[key] = ex
        return ex

    def prompt(self, example: Example, strategy: StrategySpec) -> Prompt:
        lang = example.subtask
        ex_lang = self.exemplar_language or lang
        p = self.spec.languages[ex_lang]
        fields = {"question_prefix": p.question, "answer_prefix": p.answer, "question": example.fields["question"]}
        if strategy.style == "zs_cot":
            return Prompt(self.template("zs_query", **fields))
        kind = "cot_exemplar" if strategy.style == "cot" else "direct_exemplar"
        shots = ([self.template(kind, answer_prefix=p.answer, **e) for e in self.exemplars(ex_lang)]
                 if strategy.exemplars else [])
        return Prompt(self.spec.templates["joiner"].join([*shots, self.template("query", **fields)]))


@BENCHMARKS.decorator("mgsm_en")
class MGSMEnglishExemplars(MGSM):
    """MGSM with the English exemplars (and English prefixes) for every language."""

    name = "mgsm_en"
    exemplar_language = "en"


# ---------------------------------------------------------------------------------------------
# TyDiQA-GoldP

_TYDI_FILES = {"dev": "tydiqa-goldp-v1.1-dev.json", "train": "tydiqa-goldp-v1.1-train.json"}


def squad_rows(data: Any, source: str) -> list[dict[str, Any]]:
    """Flatten the SQuAD / TyDiQA-GoldP JSON layout to rows (id, context, question, answers)."""
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataError(f"{source}: expected the SQuAD layout {{'data': [{{'paragraphs': [...]}}]}}")
    rows = []
    for a, article in enumerate(data["data"]):
        for p, para in enumerate(article.get("paragraphs", [])):
            for q, qa in enumerate(para.get("qas", [])):
                try:
                    rows.append({"id": qa["id"], "context": para["context"], "question": qa["question"],
                                 "answers": [x["text"] for x in qa["answers"]]})
                except (KeyError, TypeError):
                    raise DataError(f"{source}: data[{a}].paragraphs[{p}].qas[{q}]: expected id, question, "
                                    "answers[].text and the paragraph's context") from None
    return rows


def hub_row_tydiqa(row: dict[str, Any]) -> dict[str, Any]:
    """google-research-datasets/tydiqa secondary_task row → the local row layout."""
    return {"id": row["id"], "context": row["context"], "question": row["question"],
            "answers": list(row["answers"]["text"])}


@BENCHMARKS.decorator("tydiqa")
class TyDiQA(Benchmark):
    """TyDiQA-GoldP, one-shot, per language."""

    name = spec_name = "tydiqa"

    def subtasks(self) -> list[str]:
        return list(self.spec.all_subtasks)

    def default_subtasks(self) -> list[str]:
        """The paper's 8 languages; with a local file, those of them it has (a small file may hold few)."""
        if self.data_dir is None:
            return list(self.spec.default_subtasks)
        present = {self._lang(r["id"]) for r in self._split("dev") or []}
        chosen = [s for s in self.spec.default_subtasks if s in present]
        if not chosen:
            raise DataError(f"tydiqa: the dev file holds none of {', '.join(self.spec.default_subtasks)}")
        return chosen

    def _split(self, split: str) -> list[dict[str, Any]] | None:
        key = f"split:{split}"
        if key not in self.__dict__:
            if self.data_dir is None:
                hub_split = self.spec.hub.test_split if split == "dev" else (self.spec.hub.dev_split or "train")
                rows = [hub_row_tydiqa(r) for r in _hub_rows(self.spec, self.spec.hub.config, hub_split)]
            else:
                path = self.data_dir / "tydiqa" / _TYDI_FILES[split]
                if not path.exists():
                    if split == "dev":
                        self.local("tydiqa", _TYDI_FILES[split])  # raises, naming the file
                    rows = None
                else:
                    rows = squad_rows(json.loads(path.read_text(encoding="utf-8")), str(path))
            self.__dict__[key] = rows
        return self.__dict__[key]

    @staticmethod
    def _lang(row_id: str) -> str:
        return row_id.split("-", 1)[0]

    def _dev_lang(self, lang: str) -> list[dict[str, Any]]:
        return [r for r in self._split("dev") or [] if self._lang(r["id"]) == lang]

    def exemplar(self, lang: str) -> tuple[dict[str, Any], int | None]:
        """The one-shot exemplar of ``lang`` and, when taken from dev, its index (left out of scoring)."""
        for r in self._split("train") or []:
            if self._lang(r["id"]) == lang:
                return r, None
        dev = self._dev_lang(lang)
        if not dev:
            raise DataError(f"tydiqa: no {lang} examples found")
        return dev[0], 0

    def load(self, subtask: str) -> list[Example]:
        _, skip = self.exemplar(subtask)
        return [
            Example(subtask, i, {"context": r["context"], "question": r["question"]},
                    r["answers"][0] if r["answers"] else "", tuple(r["answers"]))
            for i, r in enumerate(self._dev_lang(subtask)) if i != skip
        ]

    def prompt(self, example: Example, strategy: StrategySpec) -> Prompt:
        parts = []
        if strategy.exemplars:
            ex, _ = self.exemplar(example.subtask)
            parts.append(self.template("exemplar", context=ex["context"], question=ex["question"],
                                       answer=ex["answers"][0] if ex["answers"] else ""))
        parts.append(self.template("query", **example.fields))
        return Prompt(self.spec.templates["joiner"].join(parts))
