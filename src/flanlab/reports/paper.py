"""The paper's reference rows (Chung et al. 2022, Table 5), from the data evaluation ships
(``flanlab/evaluation/data/table5.yaml``, loaded and validated by ``evaluation.specs.load_table5``)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PaperRow", "load_paper_rows", "paper_column"]


@dataclass(frozen=True)
class PaperRow:
    model: str
    scores: dict[str, float]  # column (e.g. "bbh_direct", "mmlu_cot") -> percent
    source: str


def load_paper_rows() -> list[PaperRow]:
    """Every Table 5 row with its numbers by column name (missing numbers left out)."""
    from flanlab.evaluation.specs import load_table5

    table = load_table5()
    return [
        PaperRow(f"{row.model} ({row.params})",
                 {c: v for c, v in zip(table.columns, row.scores, strict=True) if v is not None},
                 table.source)
        for row in table.rows
    ]


def paper_column(benchmark: str, setting: str) -> str:
    """The Table 5 column a score of ``benchmark`` under ``setting`` compares with: ``bbh`` + ``cot``
    → ``bbh_cot``; no setting means direct prompting (``bbh_direct``); ``zs_cot`` has no column."""
    return f"{benchmark}_{setting or 'direct'}".lower()
