"""Shared fixtures. Tests build their own tiny data; real benchmark data comes from ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FLANLAB_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("FLANLAB_PROGRESS", "0")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# Hypothesis profiles. ``ci``: the same examples on every run (derandomized: drawn from a seed fixed
# by each test's source), a fixed number of them, no example database read or written, so one commit
# always gets one outcome. ``explore``: fresh random examples, ten times as many, failures saved to
# .hypothesis/ and replayed first next time; for hunting bugs on purpose:
#     HYPOTHESIS_PROFILE=explore python -m pytest tests/reliability
# CI=true always selects ``ci`` (CI must not flake); otherwise HYPOTHESIS_PROFILE, defaulting to ``ci``
# so a local run reproduces what CI saw. Tests set no max_examples of their own (hypothesis_examples()
# scales a costly test down) so that the profile decides how hard they search.
CI_EXAMPLES = 60
_COMMON = {"deadline": None, "print_blob": True,
           "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]}
settings.register_profile("ci", max_examples=CI_EXAMPLES, derandomize=True, database=None, **_COMMON)
settings.register_profile("explore", max_examples=10 * CI_EXAMPLES, derandomize=False, **_COMMON)
HYPOTHESIS_PROFILE = "ci" if os.environ.get("CI", "").lower() == "true" else os.environ.get("HYPOTHESIS_PROFILE", "ci")
settings.load_profile(HYPOTHESIS_PROFILE)


def hypothesis_examples(ci: int) -> int:
    """``ci`` examples under the ``ci`` profile, as many times more as the active profile asks for
    (ten under ``explore``): for a test too costly to run CI_EXAMPLES examples."""
    return max(1, round(ci * settings.default.max_examples / CI_EXAMPLES))


def pytest_report_header(config) -> str:
    return f"hypothesis profile: {HYPOTHESIS_PROFILE} (max_examples={settings.default.max_examples})"


@pytest.fixture
def shared_data() -> Path:
    """The real offline benchmark data (../shared/data); skips visibly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory) -> Path:
    """A tiny random Llama checkpoint folder (real model, random weights)."""
    from flanlab.inference.tiny import make_tiny_model

    return make_tiny_model("llama", tmp_path_factory.mktemp("tiny") / "llama")


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory) -> Path:
    """A tiny random T5 checkpoint folder (real model, random weights)."""
    from flanlab.inference.tiny import make_tiny_model

    return make_tiny_model("t5", tmp_path_factory.mktemp("tiny") / "t5")
