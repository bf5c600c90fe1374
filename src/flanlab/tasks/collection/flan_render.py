"""Render a task the way google-research/FLAN's flan/v2 renders it, from the templates of a checkout.

What flan/v2 does, and what this module does the same way (``flan/v2/tasks.py``, ``few_shot.py``,
``preprocessors.py``, ``mixtures_utils.py`` of the checkout):

- **Filling a pattern**: ``{name}`` fields are replaced by the example's values
  (``format_from_feature_dictionary``: the text is split on ``{\\w*}``; nothing is stripped).
- **zs_opt**: ``PATTERNS`` (all templates, one drawn per example); a task with answer options gets
  them in a random style (``format_options_non_deterministic``: a start string, one of the item-name
  lists and one of the item endings of ``templates.py``, each drawn uniformly), and its answer
  becomes the stripped item name when the item names are distinct. Without a random style (a fixed
  ``OPTIONS:\\n- `` style, ``option_styles="flan"``) options are written as ``format_options`` does.
- **zs_noopt**: ``PATTERNS_NO_OPTIONS`` (the branched patterns with the options placeholders removed).
- **fs_opt**: the mixture's two few-shot tasks, drawn per example with the weights of
  ``T_NAME_TO_NUM_CASES`` (``five_shot`` / ``x_shot``): *template-mix* (5 exemplars, each example and
  exemplar with its own template among those ``in_template_mix``, one separator per task drawn from
  ``\\n``, ``\\n\\n``, ``\\n\\n\\n``, the 2nd template's final suffix and input pattern) and *x-shot*
  (25 exemplar draws, each with a random template, of which only those with the query's template are
  kept; stripped targets). Options are always ``OPTIONS:\\n- `` in few-shot formats.
- **fs_noopt**: x-shot over ``FEWSHOT_PATTERNS_NO_OPTIONS``.
- **Exemplars plus query under the budget**: exemplars are kept while the running sum of their input
  and target tokens stays within ``FEW_SHOT_MAX_LEN`` minus the query's input tokens; an example left
  with no exemplar is dropped (``filter_zero_shot_in_few_shot``).

Where we knowingly differ: exemplars never include the query itself (flan/v2 samples the training
stream and may), and an x-shot example whose 25 draws all miss its template is drawn again rather
than dropped (the same distribution over rendered examples, without losing the query).
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flanlab.core.errors import UserError
from flanlab.core.log import get_logger
from flanlab.tasks.collection.flan_repo import (
    FewShotPattern,
    FlanPattern,
    FlanRepo,
    FlanRepoError,
    format_to_jinja,
    placeholders,
)
from flanlab.tasks.template import Template, TemplateFamily

__all__ = [
    "FLAN_OPTIONS",
    "FlanFamily",
    "FlanSpec",
    "OptionDraw",
    "assemble_fewshot",
    "fill",
    "flan_family",
    "format_options",
]

log = get_logger("tasks.flan")

# flan/v2 preprocessors.format_options (the deterministic style): a header, then "- " items;
# format_dialog likewise for dialog turns, ending with the marker of the turn to predict.
FLAN_OPTIONS = ("OPTIONS:\n- ", "\n- ")
FLAN_DIALOG = ("DIALOG:\n", "\n- ", "\n- ")
# flan/v2 tasks.py: template-mix tasks take 5 exemplars and one separator per task from these;
# x-shot tasks draw 25 exemplars (about 2.5 share the query's template among 10).
MIX_SHOTS = 5
MIX_SEPARATORS = ("\n", "\n\n", "\n\n\n")
X_SHOT_DRAWS = 25
_MAX_REDRAWS = 20
_FIELD = re.compile(r"({\w*})")


def fill(pattern: str, example: Mapping[str, Any], where: str = "") -> str:
    """``pattern`` with its ``{name}`` fields replaced as flan/v2's
    ``format_from_feature_dictionary`` replaces them."""
    out = []
    for part in _FIELD.split(pattern):
        if not part:
            continue
        if part[0] == "{" and part[-1] == "}":
            name = part[1:-1]
            if name not in example:
                raise UserError(f"{where}: the template reads {{{name}}}, which the example does not have "
                                f"(fields: {', '.join(sorted(example))})")
            value = example[name]
            out.append(value if isinstance(value, str) else str(value))
        else:
            out.append(part)
    return "".join(out)


@dataclass(frozen=True)
class OptionDraw:
    """One draw of flan/v2's randomized option style: indices into the start strings, the
    item-name lists and the item endings of ``templates.py``."""

    start: int
    items: int
    ends: int

    @staticmethod
    def random(repo: FlanRepo, rng: random.Random, kind: str = "OPT") -> OptionDraw:
        """A style drawn uniformly, each part independently (as ``_random_draw`` does); ``kind``
        ``OPT`` (answer options) or ``DIALOG`` (dialog turns)."""
        return OptionDraw(rng.randrange(len(repo.candidate(f"{kind}_START_STRING_CANDIDATES"))),
                          rng.randrange(len(repo.candidate(f"{kind}_ITEM_NAME_CANDIDATES"))),
                          rng.randrange(len(repo.candidate(f"{kind}_ITEM_END_STR_CANDIDATES"))))


def format_options(repo: FlanRepo, options: Sequence[str], answer: str,
                   draw: OptionDraw | None) -> tuple[str, str]:
    """``(options_, answer)`` as flan/v2 writes them: ``format_options`` without a draw, else
    ``format_options_non_deterministic`` with that draw (which may turn the answer into a label)."""
    options = [str(o) for o in options]
    if draw is None:
        head, sep = FLAN_OPTIONS
        return head + sep.join(options), answer
    start = repo.candidate("OPT_START_STRING_CANDIDATES")[draw.start]
    names = repo.candidate("OPT_ITEM_NAME_CANDIDATES")[draw.items]
    ends = repo.candidate("OPT_ITEM_END_STR_CANDIDATES")[draw.ends]
    if len(options) > min(len(names), len(ends)):
        raise UserError(f"{len(options)} answer options: flan/v2's option styles support at most {len(names)}")
    names = names[: len(options)]
    text = start + "".join(n + o + e for n, o, e in zip(names, options, ends, strict=False))
    stripped = [n.strip() for n in names]
    matches = [i for i, o in enumerate(options) if o.strip() == answer.strip()]
    if matches and len(set(stripped)) == len(stripped):
        answer = stripped[matches[0]]
    return text, answer


def format_dialog(repo: FlanRepo, turns: Sequence[str], draw: OptionDraw | None) -> str:
    """``dialog_`` as flan/v2 writes it: ``format_dialog`` without a draw, else
    ``format_dialog_non_deterministic`` (the item name of the turn to predict ends it)."""
    turns = [str(t) for t in turns]
    if draw is None:
        head, sep, tail = FLAN_DIALOG
        return head + sep.join(turns) + tail
    start = repo.candidate("DIALOG_START_STRING_CANDIDATES")[draw.start]
    names = repo.candidate("DIALOG_ITEM_NAME_CANDIDATES")[draw.items]
    ends = repo.candidate("DIALOG_ITEM_END_STR_CANDIDATES")[draw.ends]
    if len(turns) >= min(len(names), len(ends)):
        raise UserError(f"{len(turns)} dialog turns: flan/v2's dialog styles support fewer than {len(names)}")
    return start + "".join(n + t + e for n, t, e in zip(names, turns, ends, strict=False)) + names[len(turns)]


def assemble_fewshot(query: tuple[str, str], shots: Sequence[tuple[str, str]], *, inputs_prefix: str = "",
                     targets_prefix: str = "", x_y_delimiter: str = "\n\n", example_separator: str = "\n\n\n",
                     final_suffix: str = "", input_pattern: str = "{{inputs}}{final_suffix}",
                     strip_targets: bool = False, fields: Mapping[str, Any] | None = None) -> tuple[str, str]:
    """A few-shot ``(inputs, targets)`` from filled ``(inputs, targets)`` pairs, as flan/v2's
    ``register_few_shot_version_of_task`` builds it (seqio's ``fewshot_preprocessor``, trailing
    spaces removed, then ``input_pattern`` with ``final_suffix``)."""
    text = "".join(inputs_prefix + x + x_y_delimiter + targets_prefix + y + example_separator for x, y in shots)
    text += inputs_prefix + query[0] + x_y_delimiter + targets_prefix.rstrip()
    text = text.rstrip(" ")
    targets = query[1].strip() if strip_targets else query[1]
    outer = input_pattern.format(final_suffix=final_suffix)
    return fill(outer, {**(fields or {}), "inputs": text}), targets


def _inverted(pattern_targets: str, standard_targets: set[str]) -> bool:
    """A pattern is an input inversion when its targets do not read the task's target fields."""
    return not standard_targets <= set(placeholders(pattern_targets))


@dataclass(frozen=True)
class FlanSpec:
    """Which flan/v2 templates a task uses and how: ``key`` of ``PATTERNS``/``FEWSHOT_PATTERNS``,
    ``t_name`` of ``T_NAME_TO_NUM_CASES``, whether it has answer options, ``cot`` (CoT formats),
    ``inverted`` (None: every template, as flan/v2; True/False: only inversions / only the rest)
    and ``unavailable`` (placeholders without data: templates reading them are left out)."""

    repo: FlanRepo
    key: str
    t_name: str
    options: bool
    cot: bool = False
    dialog: bool = False
    inverted: bool | None = None
    unavailable: tuple[str, ...] = ()

    # -- the templates of each format ---------------------------------------------------------
    def _keep(self, patterns: list[Any], standard_targets: set[str]) -> list[tuple[int, Any]]:
        out = []
        for i, p in enumerate(patterns):
            if set(placeholders(p.inputs) + placeholders(p.targets)) & set(self.unavailable):
                continue
            if self.inverted is not None and _inverted(p.targets, standard_targets) != self.inverted:
                continue
            out.append((i, p))
        return out

    def _standard_targets(self) -> set[str]:
        # PATTERNS[key][0] is a standard template in every flan/v2 list: its targets name the
        # task's target fields (few-shot lists may open with an inversion).
        found = self.repo.zero_shot(self.key)
        return set(placeholders(found[0].targets)) if found else set()

    def zero_shot(self) -> list[tuple[int, FlanPattern]]:
        return self._keep(self.repo.zero_shot(self.key), self._standard_targets())

    def no_options(self) -> list[tuple[int, FlanPattern]]:
        return self._keep(self.repo.no_options(self.key), self._standard_targets())

    def has_inversions(self) -> bool:
        """Whether flan/v2 has an input-inversion template for this key that the data can fill."""
        from dataclasses import replace

        inv = replace(self, inverted=True)
        return bool(inv.zero_shot() or inv.no_options() or (self.has_fewshot() and inv.few_shot(True)))

    def has_fewshot(self) -> bool:
        return self.key in self.repo.fewshot

    def few_shot(self, options: bool) -> list[tuple[int, FewShotPattern]]:
        return self._keep(self.repo.few_shot(self.key, options), self._standard_targets())

    def templates(self) -> tuple[Template, ...]:
        """Our :class:`Template` view of the patterns (ids ``flan:KEY:[noopt:|fs:|fs_noopt:]I``),
        each serving the one format its flan/v2 list serves; CoT has no no-options lists (flan/v2's
        CoT submixtures have none)."""
        kind = "inversion" if self.inverted else "cot" if self.cot else "standard"
        zs, fs = ("zs_cot",) if self.cot else ("zs_opt",), ("fs_cot",) if self.cot else ("fs_opt",)
        groups: list[tuple[str, tuple[str, ...], list[tuple[int, Any]]]] = [("", zs, self.zero_shot())]
        if not (self.cot or self.dialog):  # flan/v2 mixes no no-options variant of CoT or dialog
            groups.append(("noopt:", ("zs_noopt",), self.no_options()))
        if self.has_fewshot():
            groups.append(("fs:", fs, self.few_shot(True)))
            if not (self.cot or self.dialog):
                groups.append(("fs_noopt:", ("fs_noopt",), self.few_shot(False)))
        out = []
        for prefix, fmts, patterns in groups:
            for i, p in patterns:
                try:
                    jin, _ = format_to_jinja(p.inputs)
                    jtg, _ = format_to_jinja(p.targets)
                except FlanRepoError as e:
                    raise FlanRepoError(f"{p.where}: {self.key} template {i}: {e}") from None
                out.append(Template(id=f"flan:{self.key}:{prefix}{i}", inputs=jin, targets=jtg, formats=fmts,
                                    kind=kind, cot_trigger=False))
        return tuple(out)

    # -- rendering ----------------------------------------------------------------------------
    def render(self, task: Any, fmt: str, *, split: str = "train", seed: int = 0, tokenizer: Any = None,
               budget: Any = None, option_styles: str = "random", limit: int | None = None,
               drop_unfit: bool = True) -> Iterator[Any]:
        """Stream ``task``'s ``split`` rendered in ``fmt`` as flan/v2 renders it (see the module)."""
        from flanlab.tasks.budget import make_counter
        from flanlab.tasks.formats import Budget
        from flanlab.tasks.task import Rendered, _rng, fingerprint

        if fmt not in task.family.formats():
            raise UserError(f"task {task.name!r} has no flan/v2 format {fmt!r}; its formats: "
                            f"{', '.join(task.family.formats())}")
        counter = make_counter(tokenizer)
        budget = budget or Budget()
        max_len = self.repo.few_shot_max_len or budget.fewshot_inputs
        fewshot = fmt.startswith("fs_")
        pool = task.exemplar_pool() if fewshot else []
        # One template-mix separator per task, as flan/v2 draws one when it registers the task.
        mix_sep = MIX_SEPARATORS[_rng(seed, task.name, "mix-separator").randrange(len(MIX_SEPARATORS))]
        yielded = 0
        dropped = 0
        for i, (where, ex) in enumerate(task.records(split)):
            if limit is not None and yielded >= limit:
                break
            rng = _rng(seed, task.name, split, i, fmt)
            fp = fingerprint(ex)
            if not fewshot:
                tid, inputs, targets = self._zero_shot(fmt, ex, rng, option_styles, where)
                chosen: list[str] = []
            else:
                result = self._few_shot(task, fmt, ex, fp, pool, rng, mix_sep, counter, max_len, where,
                                        drop_unfit)
                if result is None:
                    dropped += 1
                    continue
                tid, inputs, targets, chosen = result
                dropped += not chosen
            if counter is not None:
                if not counter.fits(inputs, budget.inputs):
                    inputs = counter.truncate(inputs, budget.inputs)
                if not counter.fits(targets, budget.targets):
                    targets = counter.truncate(targets, budget.targets)
            yielded += 1
            yield Rendered(inputs, targets, task.name, tid, fmt, split, i, fp, tuple(chosen))
        if dropped:
            log.info("%s (%s): %d example(s) %s: no exemplar fits the %d-token few-shot budget "
                     "(flan/v2 filter_zero_shot_in_few_shot drops them)", task.name, fmt, dropped,
                     "dropped" if drop_unfit else "kept without exemplars", max_len)

    def _options(self, ex: Mapping[str, Any], draw: OptionDraw | None) -> dict[str, Any]:
        ctx = dict(ex)
        if self.dialog:
            ctx["dialog_"] = format_dialog(self.repo, ex["turns"], draw)
            return ctx
        if self.options and "options" in ex:
            ctx["options_"], ctx["answer"] = format_options(self.repo, ex["options"], str(ex["answer"]), draw)
        return ctx

    def zero_shot_one(self, fmt: str, index: int, example: Mapping[str, Any], draw: OptionDraw | None = None,
                      where: str = "") -> tuple[str, str]:
        """``example`` through zero-shot template ``index`` of ``fmt``'s list (``zs_opt``/``zs_cot``:
        ``PATTERNS``, ``zs_noopt``: ``PATTERNS_NO_OPTIONS``) with option style ``draw`` (None:
        ``OPTIONS:\n- ``)."""
        patterns = self.repo.no_options(self.key) if fmt == "zs_noopt" else self.repo.zero_shot(self.key)
        p = patterns[index]
        ctx = self._options(example, None if fmt == "zs_noopt" else draw)
        spot = f"{where}: {p.where}" if where else p.where
        return fill(p.inputs, ctx, spot), fill(p.targets, ctx, spot)

    def _zero_shot(self, fmt: str, ex: Mapping[str, Any], rng: random.Random, option_styles: str,
                   where: str) -> tuple[str, str, str]:
        noopt = fmt == "zs_noopt"
        i, _ = rng.choice(self.no_options() if noopt else self.zero_shot())
        kind = "DIALOG" if self.dialog else "OPT"
        draw = OptionDraw.random(self.repo, rng, kind) if option_styles == "random" and not noopt else None
        inputs, targets = self.zero_shot_one(fmt, i, ex, draw, where)
        return f"flan:{self.key}:{'noopt:' if noopt else ''}{i}", inputs, targets

    def _fewshot_mode(self, fmt: str, rng: random.Random) -> str:
        if fmt == "fs_noopt":
            return "x"
        mix = [p for _, p in self.few_shot(True) if p.in_template_mix]
        if not mix:
            return "x"
        cases = self.repo.num_cases.get(self.t_name, {})
        w_mix, w_x = cases.get("five_shot", 1), cases.get("x_shot", 1)
        return "mix" if rng.random() * (w_mix + w_x) < w_mix else "x"

    def _few_shot(self, task: Any, fmt: str, ex: Mapping[str, Any], fp: str, pool: list[dict[str, Any]],
                  rng: random.Random, mix_sep: str, counter: Any, max_len: int, where: str,
                  drop_unfit: bool = True):
        from flanlab.tasks.task import fingerprint

        options = fmt != "fs_noopt"
        prefix = "fs:" if options else "fs_noopt:"
        patterns = self.few_shot(options)
        mode = self._fewshot_mode(fmt, rng)
        candidates = range(len(pool))  # sampled lazily: pools reach tens of thousands
        # Fingerprints of the pool, computed once per task object (exemplars are never the query).
        fps = task._pool.get("fingerprints")
        if fps is None or len(fps) != len(pool):
            fps = task._pool["fingerprints"] = [fingerprint(x) for x in pool]
        ctx = self._options(ex, None)
        spot = f"{where}: {self.key}"
        if mode == "mix":
            mix = [(i, p) for i, p in patterns if p.in_template_mix]
            qi, qp = rng.choice(mix)
            query = (fill(qp.combined_inputs_w_target_prefix, ctx, spot), fill(qp.targets, ctx, spot))
            picks = [j for j in rng.sample(candidates, min(len(candidates), MIX_SHOTS + 1))
                     if fps[j] != fp][:MIX_SHOTS]
            shots = []
            for j in picks:
                _, sp = rng.choice(mix)
                ectx = self._options(pool[j], None)
                shots.append((fill(sp.combined_inputs_w_target_prefix, ectx, spot), fill(sp.targets, ectx, spot)))
            second = self.repo.few_shot(self.key, options)[1 if len(self.repo.fewshot[self.key]) > 1 else 0]
            kwargs = dict(inputs_prefix="", targets_prefix="", x_y_delimiter="", example_separator=mix_sep,
                          final_suffix=second.final_suffix, input_pattern=second.input_pattern)
        else:
            qi, qp = rng.choice(patterns)
            query = (fill(qp.combined_inputs_w_target_prefix, ctx, spot),
                     fill(qp.combined_targets_wo_target_prefix, ctx, spot))
            picks = []
            for _ in range(_MAX_REDRAWS):
                draws = [j for j in rng.sample(candidates, min(len(candidates), X_SHOT_DRAWS + 1))
                         if fps[j] != fp][:X_SHOT_DRAWS]
                # Each draw has its own template; only those with the query's template stay.
                picks = [j for j in draws if rng.choice(patterns)[0] == qi]
                if picks or not draws:
                    break
            shots = []
            for j in picks:
                ectx = self._options(pool[j], None)
                shots.append((fill(qp.combined_inputs_w_target_prefix, ectx, spot),
                              fill(qp.combined_targets_wo_target_prefix, ectx, spot)))
            kwargs = dict(inputs_prefix="", targets_prefix="", x_y_delimiter="", example_separator="",
                          strip_targets=True)
        chosen = [fps[j] for j in picks]
        delim = kwargs["x_y_delimiter"]
        if counter is not None and (counter.upper(query[0] + delim)
                                    + sum(counter.upper(x + delim) + counter.upper(y) for x, y in shots)) > max_len:
            # Exemplars are counted with their delimiter (added before few-shot assembly). Skipped
            # when even the upper bounds of all parts fit: then every exemplar is kept.
            room = max_len - counter.count(query[0] + kwargs["x_y_delimiter"])
            kept, total = 0, 0
            for x, y in shots:
                total += counter.count(x + kwargs["x_y_delimiter"]) + counter.count(y)
                if total > room:
                    break
                kept += 1
            shots, chosen = shots[:kept], chosen[:kept]
        if not shots and drop_unfit:
            return None
        inputs, targets = assemble_fewshot(query, shots, fields=ctx, **kwargs)
        return f"flan:{self.key}:{prefix}{qi}", inputs, targets, chosen


@dataclass(frozen=True)
class FlanFamily(TemplateFamily):
    """A template family whose examples render through flan/v2's own assembly (``flan``)."""

    flan: FlanSpec | None = None


def flan_family(spec: FlanSpec, fields: Sequence[str], description: str = "") -> FlanFamily:
    """The family of a task rendered from a FLAN checkout (every template read, or an error)."""
    templates = spec.templates()
    if not templates:
        kind = "inversion" if spec.inverted else "standard"
        raise FlanRepoError(f"{spec.repo.file('templates.py')}: PATTERNS[{spec.key!r}] has no {kind} template")
    suffix = ":inverted" if spec.inverted else ""
    return FlanFamily(f"flan:{spec.key}{suffix}", templates, tuple(fields), spec.repo.file("templates.py"),
                      description or f"flan/v2 templates {spec.key}", (), spec)


@dataclass(frozen=True)
class NIv2FlanSpec(FlanSpec):
    """flan/v2's NIv2 rendering (``tasks.py``: ``register_niv2_few_shot_task``; ``preprocessors``:
    ``reformat_single_example``). zs_opt: ``PATTERNS["natinst_v2"]``; fs_opt: template-mix
    (``INLINE_FS_PATTERNS``: the definition and one positive example with its explanation) or
    x-shot (``FEWSHOT_PATTERNS``: two exemplars before the query, the definition in front).
    NIv2 has no no-options formats in flan/v2's mixtures. Exemplars come from ``exemplars`` (flan/v2's
    ``niv2_few_shot_data`` files when the checkout has them) else the task's positive examples."""

    exemplars: tuple[tuple[str, str], ...] | None = None

    def templates(self) -> tuple[Template, ...]:
        out = []
        groups = [("", self.repo.zero_shot(self.key), lambda p: (p.inputs, p.targets)),
                  ("inline:", self.repo.inline_few_shot(self.key), lambda p: (p.inputs, p.targets)),
                  ("fs:", self.repo.few_shot(self.key, True),
                   lambda p: (p.combined_inputs_w_target_prefix, p.combined_targets_wo_target_prefix))]
        fmts = {"": ("zs_opt",), "inline:": ("fs_opt",), "fs:": ("fs_opt",)}
        for prefix, patterns, texts in groups:
            for i, p in enumerate(patterns):
                a, b = texts(p)
                try:
                    jin, _ = format_to_jinja(a)
                    jtg, _ = format_to_jinja(b)
                except FlanRepoError as e:
                    raise FlanRepoError(f"{p.where}: {self.key} template {i}: {e}") from None
                out.append(Template(id=f"flan:{self.key}:{prefix}{i}", inputs=jin, targets=jtg, formats=fmts[prefix],
                                    cot_trigger=False))
        return tuple(out)

    @staticmethod
    def fields(ex: Mapping[str, Any]) -> dict[str, Any]:
        """flan/v2's NIv2 fields of one of our NIv2 examples (``lookup_posex_fn``: the task's first
        positive example, empty strings when it has none)."""
        pos = (ex.get("positives") or [{}])[0]
        return {**ex, "Definition": ex["definition"], "ex_input": pos.get("input", ""),
                "ex_output": pos.get("output", ""), "ex_explanation": pos.get("explanation", "")}

    def _zero_shot(self, fmt, ex, rng, option_styles, where):
        i, p = rng.choice(list(enumerate(self.repo.zero_shot(self.key))))
        ctx = self.fields(ex)
        return f"flan:{self.key}:{i}", fill(p.inputs, ctx, where), fill(p.targets, ctx, where)

    def _few_shot(self, task, fmt, ex, fp, pool, rng, mix_sep, counter, max_len, where, drop_unfit=True):
        ctx = self.fields(ex)
        cases = self.repo.num_cases.get(self.t_name, {})
        w_mix, w_x = cases.get("five_shot", 1), cases.get("x_shot", 1)
        if rng.random() * (w_mix + w_x) < w_mix:
            i, p = rng.choice(list(enumerate(self.repo.inline_few_shot(self.key))))
            return f"flan:{self.key}:inline:{i}", fill(p.inputs, ctx, where), fill(p.targets, ctx, where), ["inline"]
        i, p = rng.choice(list(enumerate(self.repo.few_shot(self.key, True))))
        source = list(self.exemplars) if self.exemplars else [(x["input"], x["output"]) for x in ex.get("positives", [])]
        picks = rng.sample(range(len(source)), min(2, len(source)))
        if not picks and drop_unfit:
            return None
        inputs_pattern, targets_pattern = p.combined_inputs_w_target_prefix, p.combined_targets_wo_target_prefix
        shots = "".join(fill(inputs_pattern + targets_pattern, {"input": source[j][0], "output": source[j][1]}, where)
                        for j in picks)
        inputs_with_ex = (shots + fill(inputs_pattern, ctx, where)).rstrip(" ")
        outer = p.input_pattern.replace("{{Definition}}", "{Definition}").replace("{{inputs}}", "{inputs_with_ex}")
        inputs = fill(outer, {**ctx, "inputs_with_ex": inputs_with_ex, "final_suffix": ""}, where)
        return (f"flan:{self.key}:fs:{i}", inputs, fill(targets_pattern, ctx, where),
                [f"positive {j}" for j in picks])
