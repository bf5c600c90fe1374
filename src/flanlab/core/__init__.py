"""Core: typed config, the generic registry, run folders, atomic I/O, seeding, logging, paths."""

from flanlab.core.config import SCHEMAS, ConfigError, Schema, load_config
from flanlab.core.io import atomic_write_json, atomic_write_text
from flanlab.core.registry import Registry
from flanlab.core.runs import RunDir
from flanlab.core.seed import seed_everything

__all__ = [
    "SCHEMAS",
    "ConfigError",
    "Registry",
    "RunDir",
    "Schema",
    "atomic_write_json",
    "atomic_write_text",
    "load_config",
    "seed_everything",
]
