"""Benchmarks: prompts built from the prompt styles of ``data/benchmarks/NAME.yaml``, and scoring.

The examples come from the benchmark's data owner (:mod:`flanlab.tasks.benchmark_data`: local
files or the hub). A prompt style is data: which template opens the prompt (``head``), which
exemplars (``exemplars``, a named source) rendered by which template (``exemplar``), the query
template (``query``), the joiner, and for multiple choice the continuations to score; templates
render in the sandbox (:mod:`flanlab.tasks.sandbox`). The Python classes here only supply what a
template cannot: each benchmark's exemplar sources and per-subtask fields (BBH's official prompt
files, MGSM's language prefixes and English exemplars, MMLU's subject and lettered choices).
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flanlab.core.registry import Registry
from flanlab.evaluation.filters import apply_filter
from flanlab.evaluation.metrics import exact_match, numeric_match, squad_em, squad_f1
from flanlab.evaluation.specs import DATA, BenchmarkSpec, StrategySpec, load_benchmark_spec, read_data_yaml
from flanlab.tasks.benchmark_data import DataError, Example, MissingDataError, get_data, malformed_data
from flanlab.tasks.benchmark_data.mmlu import MMLUData
from flanlab.tasks.sandbox import render

__all__ = ["BENCHMARKS", "Benchmark", "DataError", "Example", "MissingDataError", "Prompt", "get_benchmark",
           "malformed_data"]

Shot = dict[str, Any]
# An exemplar source that is a data file: ``file:NAME.yaml`` under ``evaluation/data/``.
FILE_SOURCE = "file:"


def exemplar_file(path: Path) -> list[Shot]:
    """The ``exemplars`` of a YAML data file: a list of field mappings (all with the same keys)."""
    raw = read_data_yaml(path)
    ex = raw.get("exemplars") if isinstance(raw, dict) else None
    if not isinstance(ex, list) or not ex or not all(isinstance(e, dict) and set(e) == set(ex[0]) for e in ex):
        raise DataError(f"{path}: expected exemplars: a list of mappings with the same keys")
    return ex


@dataclass(frozen=True)
class Prompt:
    """What to send: a generation prompt, or a context with continuations to score."""

    text: str
    continuations: tuple[str, ...] = ()


BENCHMARKS: Registry[type[Benchmark]] = Registry("benchmark")


def get_benchmark(name: str, data_dir: Path | None, spec: BenchmarkSpec | None = None) -> Benchmark:
    """An instance of benchmark ``name`` reading from ``data_dir`` (None: the hub); ``spec``
    replaces its shipped ``data/benchmarks/NAME.yaml`` (a format file of your own)."""
    return BENCHMARKS.get(name)(data_dir, spec)


class Benchmark:
    """A benchmark: examples from its data owner, prompts from its YAML styles, scoring by its metric.

    Subclasses name their exemplar sources in ``sources`` and implement :meth:`shots` (and, where
    templates need them, :meth:`context` and :meth:`fields`)."""

    name: str = ""
    spec_name = ""
    sources: tuple[str, ...] = ()

    def __init__(self, data_dir: Path | None, spec: BenchmarkSpec | None = None) -> None:
        self.spec = spec or load_benchmark_spec(self.spec_name)
        self.data = get_data(self.spec.data or self.spec.name, data_dir)
        self.data_dir = self.data.data_dir
        for style, body in self.spec.styles.items():
            src = body.exemplars
            if src is not None and src not in self.sources and not src.startswith(FILE_SOURCE):
                raise DataError(f"{DATA}/benchmarks/{self.spec_name}.yaml: key styles.{style}.exemplars: unknown "
                                f"exemplar source {src!r}; {self.name} has: "
                                f"{', '.join([*self.sources, FILE_SOURCE + 'NAME.yaml'])}")

    # -- data (the data owner's) ----------------------------------------------------------------
    def subtasks(self) -> list[str]:
        """The benchmark's subtasks (subjects, languages, ...), in a stable order."""
        return self.data.subtasks()

    def default_subtasks(self) -> list[str]:
        return self.data.default_subtasks()

    def examples(self, subtask: str) -> list[Example]:
        """The subtask's scored examples, in file order (cached)."""
        return self.data.examples(subtask)

    # -- prompts --------------------------------------------------------------------------------
    def template(self, key: str, **fields: Any) -> str:
        try:
            text = self.spec.templates[key]
        except KeyError:
            raise DataError(f"{DATA}/benchmarks/{self.spec_name}.yaml: templates.{key} is missing") from None
        return render(text, fields)

    def supports(self, style: str) -> bool:
        return style in self.spec.styles

    def context(self, subtask: str) -> dict[str, Any]:
        """Fields every template of ``subtask`` may read (a subject's name, a language's prefixes)."""
        return {}

    def fields(self, example: Example) -> dict[str, Any]:
        """The fields the query template reads for ``example``."""
        return dict(example.fields)

    def shots(self, source: str, subtask: str) -> list[Shot]:
        """The exemplars of ``subtask`` from exemplar source ``source`` (one field dict each):
        ``file:NAME.yaml`` is the ``exemplars`` list of ``evaluation/data/NAME.yaml``, the same for
        every subtask; other sources are the benchmark's own (its ``sources``)."""
        if source.startswith(FILE_SOURCE):
            return self.data.memo(source, lambda: exemplar_file(DATA / source[len(FILE_SOURCE):]))
        raise DataError(f"{self.name}: no exemplar source {source!r}")

    def prompt(self, example: Example, strategy: StrategySpec) -> Prompt:
        """The prompt (or context and continuations) ``strategy`` sends for ``example``: the
        style's head, exemplars and query joined by its joiner."""
        style = self.spec.styles[strategy.style]
        ctx = self.context(example.subtask)
        head = style.head
        if not strategy.exemplars and style.zero_shot_head is not None:
            head = style.zero_shot_head
        parts = [self.template(head, **ctx)] if head else []
        if strategy.exemplars and style.exemplars and style.exemplar:
            parts += [self.template(style.exemplar, **{**ctx, **shot})
                      for shot in self.shots(style.exemplars, example.subtask)]
        parts.append(self.template(style.query, **{**ctx, **self.fields(example)}))
        conts: tuple[str, ...] = ()
        if self.uses_loglikelihood(strategy):
            assert style.continuations is not None
            conts = tuple(self.template(style.continuations, letter=letter) for letter in self.spec.letters)
        return Prompt(style.joiner.join(parts), conts)

    def uses_loglikelihood(self, strategy: StrategySpec) -> bool:
        """Whether ``strategy`` is scored by log-likelihood of options: its style lists continuations
        and its mode allows it."""
        style = self.spec.styles.get(strategy.style)
        return style is not None and style.continuations is not None and strategy.mode in ("auto", "loglikelihood")

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
# MMLU: the subject in the header, lettered choices; exemplars from dev or the Flan CoT prompt.


@BENCHMARKS.decorator("mmlu")
class MMLU(Benchmark):
    """MMLU: the Hendrycks 5-shot prompt; the Flan CoT exemplars for CoT."""

    name = spec_name = "mmlu"
    sources = ("dev", "flan_cot")
    data: MMLUData

    @property
    def categories(self) -> dict[str, str]:
        return self.data.categories()

    def _choices(self, choices: Sequence[str]) -> list[tuple[str, str]]:
        return list(zip(self.spec.letters, choices, strict=True))

    def context(self, subtask: str) -> dict[str, Any]:
        return {"subject": subtask.replace("_", " ")}

    def fields(self, example: Example) -> dict[str, Any]:
        return {"question": example.fields["question"], "choices": self._choices(example.fields["choices"])}

    def shots(self, source: str, subtask: str) -> list[Shot]:
        if source == "dev":
            return [{"question": r["question"], "choices": self._choices(r["choices"]), "answer": r["answer"]}
                    for r in self.data.rows(subtask, "dev")]
        try:
            return [{"prompt": self.data.cot_prompts()[subtask]}]
        except KeyError:
            raise DataError(f"mmlu/flan_cot_prompts.json has no prompt for subject {subtask!r}") from None

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


# ---------------------------------------------------------------------------------------------
# BBH: the official prompt files give the description and the exemplars.

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
    """BIG-Bench Hard with the official prompt files: ``description`` for the head; exemplars
    ``official`` with ``question``, ``answer`` (as written, e.g. ``(D)``) and the whole ``text``."""

    name = spec_name = "bbh"
    sources = ("official",)

    def official_prompt(self, subtask: str) -> BBHPrompt:
        def read() -> BBHPrompt:
            text, path = self.data.prompt_file(subtask)
            return parse_bbh_prompt(text, path)
        return self.data.memo(f"parsed:{subtask}", read)

    def context(self, subtask: str) -> dict[str, Any]:
        return {"description": self.official_prompt(subtask).description}

    def shots(self, source: str, subtask: str) -> list[Shot]:
        p = self.official_prompt(subtask)
        return [{"question": q, "answer": a, "text": t}
                for q, a, t in zip(p.questions, p.answers, p.exemplars, strict=True)]


# ---------------------------------------------------------------------------------------------
# GSM8K: nothing but data (the 8 standard exemplars are the file source gsm8k_exemplars.yaml).


@BENCHMARKS.decorator("gsm8k")
class GSM8K(Benchmark):
    """GSM8K test, 8-shot: its styles are all in ``data/benchmarks/gsm8k.yaml``."""

    name = spec_name = "gsm8k"


# ---------------------------------------------------------------------------------------------
# MGSM: a language's question / answer prefixes; its own (or the English) exemplars.


@BENCHMARKS.decorator("mgsm")
class MGSM(Benchmark):
    """MGSM with native-language exemplars (``native``: q and a with their prefixes, answer);
    templates read ``question_prefix`` and ``answer_prefix`` of the exemplars' language."""

    name = spec_name = "mgsm"
    sources = ("native",)
    exemplar_language: str | None = None  # None: native

    def _lang(self, subtask: str) -> str:
        lang = self.exemplar_language or subtask
        if lang not in self.spec.languages:
            raise DataError(f"{DATA}/benchmarks/{self.spec_name}.yaml: languages has no prefixes for {lang!r}")
        return lang

    def context(self, subtask: str) -> dict[str, Any]:
        p = self.spec.languages[self._lang(subtask)]
        return {"question_prefix": p.question, "answer_prefix": p.answer}

    def shots(self, source: str, subtask: str) -> list[Shot]:
        lang = self._lang(subtask)
        ex = self.data.exemplars(lang)
        prefix = self.spec.languages[lang].question
        for i, e in enumerate(ex, 1):
            if not e["q"].startswith(prefix):
                raise DataError(f"mgsm exemplar {i} ({lang}) does not start with {prefix!r}")
        return ex


@BENCHMARKS.decorator("mgsm_en")
class MGSMEnglishExemplars(MGSM):
    """MGSM with the English exemplars (and English prefixes) for every language."""

    name = "mgsm_en"
    exemplar_language = "en"


# ---------------------------------------------------------------------------------------------
# TyDiQA-GoldP: one exemplar of the same language.


@BENCHMARKS.decorator("tydiqa")
class TyDiQA(Benchmark):
    """TyDiQA-GoldP, one-shot per language (``one_shot``: context, question, answer)."""

    name = spec_name = "tydiqa"
    sources = ("one_shot",)

    def shots(self, source: str, subtask: str) -> list[Shot]:
        ex, _ = self.data.exemplar(subtask)
        return [{"context": ex["context"], "question": ex["question"],
                 "answer": ex["answers"][0] if ex["answers"] else ""}]
