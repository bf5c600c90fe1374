"""``flanlab run``: mixture → finetune → evaluate before/after → report, in one run folder.

Layout of ``runs/<name>/``::

    config.yaml            the resolved run config
    configs/<stage>.yaml   every stage's resolved config (what that stage's own command would take)
    mixture/               the mixture (complete when manifest.json exists)
    train/                 the finetune (complete when results.json exists; weights in final/)
    eval_before/ eval_after/   eval runs (complete when results.json exists)
    results.json, results.md   before/after headline scores
    report.md, report.html, plots/

Each stage is skipped when its output is complete, so rerunning an interrupted run resumes it;
the stages resume internally too (mixture shards, training checkpoints).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flanlab.core.config import ConfigError, load_yaml, validate
from flanlab.core.errors import UserError
from flanlab.core.io import atomic_write_text
from flanlab.core.log import get_logger
from flanlab.core.runs import RunDir
from flanlab.experiments.config import RunConfig, StageSection

__all__ = ["PipelineResult", "StagePlan", "deep_merge", "plan_run", "run_pipeline"]

log = get_logger(__name__)


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into a copy of ``base``; nested mappings merge, anything else replaces."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class StagePlan:
    """One stage of a run: its resolved config (a dict, validated), where it writes and whether
    that output is already complete."""

    name: str
    config: dict[str, Any]
    out: Path
    marker: Path
    source: Path | None = None  # the stage config file, for resolving relative paths in it
    data_dir: Path | None = None  # the run's data folder (the mixture stage takes it as an argument)

    @property
    def done(self) -> bool:
        return self.marker.is_file()


@dataclass
class PipelineResult:
    run_dir: Path
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    results: dict[str, Any] = field(default_factory=dict)
    report: Path | None = None


def _stage_data(section: StageSection, base_dir: Path, kind: str) -> tuple[dict[str, Any], Path | None]:
    data: dict[str, Any] = {}
    source = None
    if section.config:
        source = (base_dir / section.config).resolve()
        data = load_yaml(source)
    data = deep_merge(data, section.set)
    data.setdefault("kind", kind)
    return data, source


def _validated(kind: str, data: dict[str, Any], where: str) -> dict[str, Any]:
    """Check ``data`` against the stage's registered schema; return its JSON-able resolved form."""
    from flanlab.core.config import SCHEMAS

    if kind not in SCHEMAS:
        raise ConfigError(f"{where}: the {kind!r} stage is not available (no schema registered for it)")
    return validate(SCHEMAS.get(kind), data, source=where).model_dump(mode="json")


def _one_format(cfg: RunConfig, stage: dict[str, Any], name: str) -> dict[str, Any]:
    """The run's prompt format, which a stage may repeat but not contradict (training and evaluation
    must join prompts and answers the same way)."""
    fmt = cfg.prompt_format.model_dump(mode="json")
    own = stage.get("prompt_format")
    if own is not None and own != fmt:
        raise ConfigError(f"{cfg.name}: {name}.prompt_format {own} differs from the run's prompt_format {fmt}; "
                          "set it once, at the top of the run config")
    return fmt


def plan_run(cfg: RunConfig, run_dir: Path, config_path: Path) -> list[StagePlan]:
    """Resolve every stage's config for ``cfg`` in ``run_dir`` (nothing runs; errors surface first).
    Relative paths resolve against ``config_path``'s folder, as in the file ``cfg`` came from."""
    import flanlab.evaluation.config  # noqa: F401  (each import registers its stage's schema)
    import flanlab.mixture.config  # noqa: F401
    import flanlab.training.config  # noqa: F401

    config_dir = config_path.parent
    model = cfg.model.model_dump(mode="json")
    plans: list[StagePlan] = []
    mixture_dir = run_dir / "mixture"
    if cfg.finetunes and cfg.mixture.enabled:
        data, source = _stage_data(cfg.mixture, config_dir, "mixture")
        members = list(data.get("members") or [])
        if cfg.tasks is not None:
            if cfg.tasks > len(members):
                raise ConfigError(f"{config_path}: tasks: {cfg.tasks} but the mixture has only {len(members)} members")
            members = members[: cfg.tasks]
        data["members"] = members + cfg.extra_members
        data.setdefault("name", cfg.name)
        data["seed"] = cfg.seed  # the run's seed is every stage's seed
        if cfg.flan_repo:
            data.setdefault("flan_repo", cfg.flan_repo)
        # A relative member file resolves against the stage config's folder, as `flanlab mix` would.
        plans.append(StagePlan("mixture", _validated("mixture", data, f"{cfg.name}: mixture"), mixture_dir,
                               mixture_dir / "manifest.json", source or config_path, cfg.data_dir))
    train_dir = run_dir / "train"
    if cfg.finetunes:
        data, source = _stage_data(cfg.train, config_dir, "train")
        data = deep_merge({"name": f"{cfg.name}-train", "model": model}, data)
        data.setdefault("data", {})
        if cfg.mixture.enabled:
            data["data"]["mixture"] = str(mixture_dir)
        data.setdefault("train", {})["seed"] = cfg.seed
        if cfg.data_dir is not None:
            data["data"]["data_dir"] = cfg.data_dir
        if data.get("eval") is not None:
            data["eval"]["seed"] = cfg.seed
            if cfg.data_dir is not None:
                data["eval"]["data_dir"] = cfg.data_dir
        data["prompt_format"] = _one_format(cfg, data, "train")
        plans.append(StagePlan("train", _validated("train", data, f"{cfg.name}: train"), train_dir,
                               train_dir / "results.json", source))
    if cfg.eval.enabled:
        data, source = _stage_data(cfg.eval, config_dir, "eval")
        stages = [("eval_before", model)] if cfg.eval.before or not cfg.finetunes else []
        if cfg.eval.after and cfg.finetunes:
            # The finetuned weights are a full model folder (LoRA merged on save).
            stages.append(("eval_after", {**model, "name": str(train_dir / "final")}))
        data["seed"] = cfg.seed
        if cfg.data_dir is not None:
            data["data_dir"] = cfg.data_dir
        for name, spec in stages:
            merged = deep_merge(data, {"model": spec, "prompt_format": _one_format(cfg, data, "eval")})
            plans.append(StagePlan(name, _validated("eval", merged, f"{cfg.name}: eval"), run_dir / name,
                                   run_dir / name / "results.json", source))
    # The base model's evaluation first: it needs nothing else and reports something early.
    return sorted(plans, key=lambda p: p.name != "eval_before")


def _run_stage(plan: StagePlan) -> None:
    """Run one stage through its stage's public API."""
    if plan.name == "mixture":
        from flanlab.mixture.build import build_mixture
        from flanlab.mixture.config import MixtureConfig

        build_mixture(MixtureConfig.model_validate(plan.config), plan.out, config_path=plan.source,
                      data_dir=plan.data_dir)
    elif plan.name == "train":
        from flanlab.training.config import TrainConfig
        from flanlab.training.trainer import train

        train(TrainConfig.model_validate(plan.config), RunDir.create(str(plan.out)), resume=True)
    else:
        from flanlab.experiments.stages import run_eval

        run_eval(plan.config, plan.out, plan.source)


def _summary(run_dir: Path) -> dict[str, Any]:
    """Before/after headline scores with n, 95 % intervals, chance and the paired difference, read
    back from the eval stages as the report reads them."""
    from flanlab.reports.story import before_after

    out = before_after(run_dir)
    if (run_dir / "train" / "results.json").is_file():
        import json

        out["train"] = json.loads((run_dir / "train" / "results.json").read_text(encoding="utf-8"))
    return out


def _markdown(summary: dict[str, Any]) -> str:
    from flanlab.reports.story import before_after_markdown

    return before_after_markdown(summary)


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two resolved configs."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [k for key in sorted(set(old) | set(new), key=str)
                for k in _diff(old.get(key), new.get(key), f"{prefix}{key}.")]
    return [] if old == new else [prefix.rstrip(".")]


def _check_same_config(plan: StagePlan, run_dir: Path) -> None:
    """A stage's output may only be reused (or resumed) under the config that made it."""
    import yaml

    recorded = run_dir / "configs" / f"{plan.name}.yaml"
    if not recorded.is_file() or not plan.out.exists():
        return
    old = yaml.safe_load(recorded.read_text(encoding="utf-8")) or {}
    changed = _diff(old, plan.config)
    if changed:
        raise UserError(
            f"{run_dir}: its {plan.name} stage was made with another config ({', '.join(changed[:5])} "
            f"changed; see {recorded}); use another --run-name, or delete {plan.out} to redo that stage")


def run_pipeline(
    cfg: RunConfig,
    run: RunDir,
    config_path: Path,
    *,
    on_stage: Callable[[str, bool], None] | None = None,
) -> PipelineResult:
    """Run (or resume) every stage of ``cfg`` in ``run``; stages whose output is complete are skipped."""
    plans = plan_run(cfg, run.path, config_path)
    for plan in plans:
        _check_same_config(plan, run.path)
    run.write_config(cfg)
    for plan in plans:
        run.write_config(plan.config, name=f"configs/{plan.name}.yaml")
    result = PipelineResult(run.path)
    for i, plan in enumerate(plans, 1):
        if plan.done:
            log.info("[%d/%d] %s: complete (%s exists), skipped", i, len(plans), plan.name,
                     plan.marker.relative_to(run.path))
            result.skipped.append(plan.name)
            if on_stage:
                on_stage(plan.name, False)
            continue
        log.info("[%d/%d] %s: running into %s", i, len(plans), plan.name, plan.out)
        _run_stage(plan)
        if not plan.done:
            raise RuntimeError(f"{plan.name}: finished without writing {plan.marker}")
        result.ran.append(plan.name)
        if on_stage:
            on_stage(plan.name, True)
    result.results = _summary(run.path)
    run.write_results(result.results)
    atomic_write_text(run.path / "results.md", _markdown(result.results))
    if cfg.report.enabled and result.results["stages"]:
        from flanlab.reports.commands import make_report

        paths = make_report([run.path], run.path, cfg.report.title or f"flanlab run: {cfg.name}")
        result.report = paths["html"]
    return result
