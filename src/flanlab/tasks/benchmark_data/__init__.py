"""The one owner of each evaluation benchmark's files: one module per benchmark reads its local
layout (that of ``../shared/data``) and its hub rows into the same :class:`Example` list.

Evaluation (prompts, scoring), the contamination check of the mixture stage and the held-out
entries of the task catalog all read benchmarks through :func:`get_data`; the hub location of each
benchmark is in ``tasks/data/benchmarks.yaml``.
"""

from flanlab.tasks.benchmark_data import bbh, gsm8k, mgsm, mmlu, tydiqa  # noqa: F401  (registers them)
from flanlab.tasks.benchmark_data.base import (
    BENCHMARK_DATA,
    BenchmarkData,
    BenchmarkSource,
    DataError,
    Example,
    MissingDataError,
    data_spec,
    get_data,
    malformed_data,
)

__all__ = ["BENCHMARK_DATA", "BenchmarkData", "BenchmarkSource", "DataError", "Example", "MissingDataError", "data_spec",
           "get_data", "malformed_data"]
