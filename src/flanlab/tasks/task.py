"""Tasks and their rendering in the Flan formats.

A :class:`Task` is a source of examples, a list of pure preprocessors, a template family and
metadata (category, language, answer-options field, held-out tags). :func:`render` streams its
examples through the templates in one format: deterministic for a seed, with few-shot exemplars
drawn only from the task's training split (never the query itself, never anything equal to an
example of a held-out split), rendered with the query's template and pruned to token budgets.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from flanlab.core.errors import UserError
from flanlab.tasks.budget import TokenCounter, make_counter
from flanlab.tasks.formats import (
    COT_FORMATS,
    COT_TRIGGER,
    FEWSHOT_SEPARATOR,
    Budget,
    check_format,
    is_fewshot,
    with_options,
)
from flanlab.tasks.options import (
    OptionStyle,
    deterministic_style,
    random_style,
    render_options,
    skip_random_style,
)
from flanlab.tasks.preprocessors import Preprocessor
from flanlab.tasks.sandbox import TemplateError
from flanlab.tasks.sandbox import render as render_text
from flanlab.tasks.sources import Source, SourceError
from flanlab.tasks.template import Template, TemplateFamily

__all__ = ["TASK_TYPES", "Rendered", "Task", "fingerprint", "render", "render_example"]

TASK_TYPES = ("multiple_choice", "generation", "cot")


def fingerprint(example: Mapping[str, Any]) -> str:
    """A stable id of an example's content (used to keep queries and held-out data out of
    exemplars)."""
    blob = json.dumps(example, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha1(blob.encode("utf-8")).hexdigest()[:16]


def _rng(*parts: Any) -> random.Random:
    return random.Random(_seed_of("\x1f".join(map(str, parts))))


def _seed_of(key: str) -> int:
    # Python's hash() is salted per process; a digest keeps rendering reproducible across runs.
    return int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")


@dataclass(frozen=True)
class Rendered:
    """One rendered example: what the model reads (``inputs``) and should write (``targets``)."""

    inputs: str
    targets: str
    task: str
    template_id: str
    format: str
    split: str = "train"
    index: int = 0
    example_id: str = ""
    exemplar_ids: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["exemplar_ids"] = list(self.exemplar_ids)
        return d


@dataclass(eq=False)
class Task:
    """A task: examples from ``source``, ``preprocessors`` applied in order, rendered through
    ``family``. ``heldout`` tags the whole task (``bbh``, ``mmlu`` ...); ``heldout_splits`` maps a
    split to its tag (``{"test": "gsm8k-test"}``) — mixtures refuse both."""

    name: str
    source: Source
    family: TemplateFamily
    preprocessors: tuple[Preprocessor, ...] = ()
    task_type: str = "generation"
    category: str = ""
    language: str = "en"
    options_field: str | None = None
    answer_field: str = "answer"
    heldout: tuple[str, ...] = ()
    heldout_splits: Mapping[str, str] = field(default_factory=dict)
    train_split: str = "train"
    source_kind: str = "local"
    description: str = ""
    tags: tuple[str, ...] = ()
    _pool: dict[str, Any] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.task_type not in TASK_TYPES:
            raise UserError(f"task {self.name!r}: task_type must be one of {TASK_TYPES}, got {self.task_type!r}")
        if self.train_split in self.heldout_splits:
            raise UserError(f"task {self.name!r}: the training split {self.train_split!r} is marked held out")

    # -- data -------------------------------------------------------------------------------
    def splits(self) -> list[str]:
        return self.source.splits()

    def required_fields(self) -> set[str]:
        """Fields every example must have after preprocessing."""
        need = self.family.needed_fields()
        if self.options_field:
            need |= {self.options_field, self.answer_field}
        return need

    def records(self, split: str = "train", *, allow_empty: bool = False) -> Iterator[tuple[str, dict[str, Any]]]:
        """``(where, example)`` after preprocessing, checked for required fields; an empty split
        is an error unless ``allow_empty``."""
        need = sorted(self.required_fields())
        n = 0
        for where, ex in self.source.records(split):
            for fn in self.preprocessors:
                try:
                    ex = fn(ex)
                except KeyError as e:
                    raise SourceError(f"{where}: missing field {e.args[0]!r} (needed by preprocessor "
                                      f"{getattr(fn, '__name__', fn)} of task {self.name!r})") from None
                except ValueError as e:
                    raise SourceError(f"{where}: {e} (preprocessor {getattr(fn, '__name__', fn)} of task "
                                      f"{self.name!r})") from None
            for f in need:
                if f not in ex:
                    raise SourceError(f"{where}: missing field {f!r} (task {self.name!r} needs: "
                                      f"{', '.join(need)}; found: {', '.join(sorted(ex)) or 'none'})")
            if self.options_field:
                _check_options(where, ex, self.options_field, self.answer_field)
            n += 1
            yield where, ex
        if n == 0 and not allow_empty:
            raise SourceError(f"{self.source.name}: split {split!r} of task {self.name!r} has no examples")

    def examples(self, split: str = "train") -> Iterator[dict[str, Any]]:
        """The preprocessed examples of ``split``, streamed in a stable order."""
        for _, ex in self.records(split):
            yield ex

    # -- templates --------------------------------------------------------------------------
    def formats(self) -> list[str]:
        """Formats this task renders in (``*_opt`` only when it has answer options)."""
        fmts = self.family.formats()
        # A family rendered by flan/v2's own assembly has flan/v2's formats (zs_opt included).
        if not self.options_field and getattr(self.family, "flan", None) is None:
            fmts = [f for f in fmts if not f.endswith("_opt")]
        return fmts

    def templates(self, fmt: str) -> list[Template]:
        check_format(fmt)
        found = self.family.for_format(fmt) if fmt in self.formats() else []
        if not found:
            raise UserError(f"task {self.name!r} has no templates for format {fmt!r}; "
                            f"its formats: {', '.join(self.formats()) or '(none)'}")
        return found

    def validate_templates(self, fields: Sequence[str] | None = None) -> None:
        """Every placeholder must be a field of this task (by default: the family's declared
        fields that the first training example actually has)."""
        if fields is None:
            first = next(self.examples(self.train_split))
            fields = list(first)
        self.family.validate(fields, task=self.name)

    # -- held-out ----------------------------------------------------------------------------
    def heldout_tags(self) -> list[str]:
        """Every held-out tag, whole-task and per split."""
        return sorted(set(self.heldout) | set(self.heldout_splits.values()))

    def is_heldout(self, split: str | None = None) -> bool:
        """Whether the task (or, given ``split``, that split) must stay out of training."""
        return bool(self.heldout) or (split is not None and split in self.heldout_splits)

    def train_records(self) -> list[tuple[str, dict[str, Any]]]:
        """The training split's ``(where, example)`` records (possibly none), read and preprocessed
        once and then kept: the exemplar pool holds these examples anyway, and a mixture renders
        every format and epoch of a task from them."""
        if "records" not in self._pool:
            self._pool["records"] = list(self.records(self.train_split, allow_empty=True))
        return self._pool["records"]

    def _split_records(self, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
        """:meth:`records`, from :meth:`train_records` for the training split."""
        if split != self.train_split:
            return self.records(split)
        cached = self.train_records()
        if not cached:
            return self.records(split)  # raises the empty-split error
        return iter(cached)

    def _fingerprint(self, example: dict[str, Any]) -> str:
        """:func:`fingerprint`, remembered per example object (a query's and its exemplars'
        fingerprints are asked for again on every pass); the memo holds the objects it keys."""
        memo = self._pool.get("fingerprints")
        if memo is None:
            # A view of this task made for one pass (same pool) shares the pool's memo.
            memo = getattr(self._pool.get("pool"), "fingerprints", None)
            memo = self._pool["fingerprints"] = {} if memo is None else memo
        hit = memo.get(id(example))
        if hit is not None and hit[0] is example:
            return hit[1]
        fp = fingerprint(example)
        memo[id(example)] = (example, fp)
        return fp

    def exemplar_pool(self) -> list[dict[str, Any]]:
        """The training split's examples, minus anything equal to an example of a held-out split
        (cached)."""
        if "pool" not in self._pool:
            banned: set[str] = set()
            for split in self.heldout_splits:
                if split in self.splits():
                    banned |= {fingerprint(ex) for ex in self.examples(split)}
            # A tiny task may have no training examples: few-shot then has no exemplars.
            pool = [ex for _, ex in self.train_records()]
            if banned:
                pool = [ex for ex in pool if fingerprint(ex) not in banned]
            self._pool["pool"] = _Pool(pool, self._pool.setdefault("fingerprints", {}))
        return self._pool["pool"]


class _Pool(list):
    """The exemplar pool: a list that carries the fingerprint memo of the task it came from."""

    def __init__(self, items: list[dict[str, Any]], fingerprints: dict[int, tuple[Any, str]]) -> None:
        super().__init__(items)
        self.fingerprints = fingerprints


def _check_options(where: str, ex: Mapping[str, Any], options_field: str, answer_field: str) -> None:
    opts = ex[options_field]
    if not isinstance(opts, (list, tuple)) or len(opts) < 2:
        raise SourceError(f"{where}: field {options_field!r}: expected a list of at least 2 options, got {opts!r}")
    if str(ex[answer_field]) not in [str(o) for o in opts]:
        raise SourceError(f"{where}: field {answer_field!r}: {ex[answer_field]!r} is not one of the options")


def render_example(task: Task, template: Template, example: Mapping[str, Any], fmt: str,
                   style: OptionStyle | None = None, where: str = "") -> tuple[str, str]:
    """Render one example with one template in ``fmt``: ``(inputs, targets)``.

    With options shown, ``options_`` is the options block in ``style`` and the answer field
    becomes the answer's label when the style labels options.
    """
    ctx = dict(example)
    ctx["options_"] = ""
    if task.options_field and with_options(fmt):
        opts = [str(o) for o in example[task.options_field]]
        block = render_options(opts, style or deterministic_style())
        ctx["options_"] = block.text
        ctx[task.answer_field] = block.target_for(opts, str(example[task.answer_field]))
    try:
        inputs = render_text(template.inputs, ctx).strip()
        targets = render_text(template.targets, ctx).strip()
    except TemplateError as e:
        spot = f"{where}: " if where else ""
        raise TemplateError(f"{spot}{task.family.path}: template {template.id!r}: {e}") from None
    if fmt == "zs_cot" and template.cot_trigger:
        inputs = f"{inputs}\n{COT_TRIGGER}"
    return inputs, targets


def _may_equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """False when examples ``a`` and ``b`` surely have different fingerprints: a field both hold as a
    string differs, so their sorted JSON dumps differ (unequal strings never dump alike); else True."""
    if a is b:
        return True
    for k, v in a.items():
        w = b.get(k)
        if type(v) is str and type(w) is str and v != w:
            return False
    return True


def _fit(counter: TokenCounter | None, query: str, shots: list[str], budget: Budget) -> tuple[str, list[int]]:
    """Join exemplars and query, dropping exemplars that do not fit and truncating the query so
    the whole input and the exemplar part stay within budget; also returns which were kept."""
    if counter is None:
        return FEWSHOT_SEPARATOR.join([*shots, query]), list(range(len(shots)))
    if not counter.fits(query, budget.inputs):
        query = counter.truncate(query, budget.inputs)
    kept: list[int] = []
    joined = getattr(counter, "joined", None)
    if joined is not None:
        # The same checks on the same joined texts, each piece measured at most once (the joined
        # candidates grow by one exemplar at a time; counting each anew re-tokenized the others).
        parts = joined([*shots, query], FEWSHOT_SEPARATOR)
        q = len(shots)
        for i in range(len(shots)):
            if parts.fits([*kept, i], budget.fewshot_inputs) and parts.fits([*kept, i, q], budget.inputs):
                kept.append(i)
        return FEWSHOT_SEPARATOR.join([*(shots[j] for j in kept), query]), kept
    for i, shot in enumerate(shots):
        # An exemplar that does not fit is skipped; a shorter later one may still fit.
        candidate = FEWSHOT_SEPARATOR.join([*(shots[j] for j in kept), shot])
        if not counter.fits(candidate, budget.fewshot_inputs):
            continue
        if not counter.fits(candidate + FEWSHOT_SEPARATOR + query, budget.inputs):
            continue
        kept.append(i)
    return FEWSHOT_SEPARATOR.join([*(shots[j] for j in kept), query]), kept


def render(
    task: Task,
    fmt: str,
    *,
    split: str = "train",
    seed: int = 0,
    shots: int = 3,
    tokenizer: Any = None,
    budget: Budget | None = None,
    option_styles: str = "random",
    limit: int | None = None,
    drop_unfit: bool = True,
    ids: bool = True,
) -> Iterator[Rendered]:
    """Stream ``task``'s ``split`` rendered in ``fmt``.

    A task whose family comes from a FLAN checkout renders as flan/v2 does
    (:mod:`flanlab.tasks.collection.flan_render`; ``shots`` is then flan/v2's own): a few-shot
    example with no exemplar that fits the budget is dropped, as flan/v2 drops it, unless
    ``drop_unfit=False`` (mixtures, whose plan counted it), which keeps it with no exemplar.

    Per example a seeded RNG (seed, task, split, index) picks the template, the option style
    (``option_styles="random"``: the randomized Flan styles; ``"flan"``: always ``OPTIONS:\\n- ``)
    and, in few-shot formats, up to ``shots`` exemplars. With a ``tokenizer`` (an HF tokenizer or
    a :class:`~flanlab.tasks.budget.TokenCounter`) targets, inputs and exemplars are pruned to
    ``budget`` (Flan defaults 2048 / 512 / 1920 tokens).

    ``ids=False`` (a mixture, which does not write them) leaves ``example_id`` and ``exemplar_ids``
    empty: fingerprints (a JSON dump and a digest of the example, ~10 µs for a long one) are then
    computed only for an exemplar that may equal its query (:func:`_may_equal`); the same exemplars
    are kept out, so the texts are the same.
    """
    check_format(fmt)
    if option_styles not in ("random", "flan"):
        raise UserError(f"option_styles must be 'random' or 'flan', got {option_styles!r}")
    flan = getattr(task.family, "flan", None)
    if flan is not None:
        # Templates read from a FLAN checkout: flan/v2 decides shots, separators and option styles.
        yield from flan.render(task, fmt, split=split, seed=seed, tokenizer=tokenizer, budget=budget,
                               option_styles=option_styles, limit=limit, drop_unfit=drop_unfit)
        return
    templates = task.templates(fmt)
    counter = make_counter(tokenizer)
    budget = budget or Budget()
    fewshot = is_fewshot(fmt)
    pool = task.exemplar_pool() if fewshot else []
    # A whole pass re-reads the same records (every epoch and format of a mixture stream): keep them.
    records = task.records(split) if limit is not None else task._split_records(split)
    ex_fmt = "fs_cot" if fmt in COT_FORMATS else fmt
    # Without options on show the style is never read: its draws are made, the object is not built.
    styled = bool(task.options_field) and (with_options(fmt) or (fewshot and with_options(ex_fmt)))
    # _rng(seed, task.name, split, i, fmt), reseeding one generator (seeding equals constructing).
    rng = random.Random()
    head, tail = f"{seed}\x1f{task.name}\x1f{split}\x1f", f"\x1f{fmt}"
    for i, (where, ex) in enumerate(records):
        if limit is not None and i >= limit:
            return
        rng.seed(_seed_of(f"{head}{i}{tail}"))
        template = rng.choice(templates)
        style = None
        if option_styles != "random":
            style = deterministic_style()
        elif styled:
            style = random_style(rng)
        else:
            skip_random_style(rng)
        inputs, targets = render_example(task, template, ex, fmt, style, where)
        fp = task._fingerprint(ex) if ids else ""
        chosen: list[str] = []
        if fewshot:
            picks = rng.sample(range(len(pool)), min(len(pool), shots + 1)) if pool else []
            blocks = []
            for j in picks:
                if len(blocks) == shots:
                    break
                exemplar = pool[j]
                if ids:
                    efp = task._fingerprint(exemplar)
                    if efp == fp:
                        continue
                else:
                    efp = ""
                    if _may_equal(exemplar, ex) and task._fingerprint(exemplar) == task._fingerprint(ex):
                        continue
                xi, xt = render_example(task, template, exemplar, ex_fmt, style)
                blocks.append(f"{xi}\n{xt}")
                chosen.append(efp)
            inputs, kept = _fit(counter, inputs, blocks, budget)
            # Exemplars dropped by the budget are not in the prompt: report only those kept.
            chosen = [chosen[j] for j in kept]
        elif counter is not None and not counter.fits(inputs, budget.inputs):
            inputs = counter.truncate(inputs, budget.inputs)
        if counter is not None and not counter.fits(targets, budget.targets):
            targets = counter.truncate(targets, budget.targets)
        yield Rendered(inputs, targets, task.name, template.id, fmt, split, i, fp, tuple(chosen) if ids else ())

