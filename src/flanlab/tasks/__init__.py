"""Tasks and instruction templates in the Flan formats.

Public API (what mixture and evaluation use):

- :mod:`flanlab.tasks.formats`: ``FORMATS``, ``COT_FORMATS``, ``ALL_FORMATS``, ``Budget``, ``COT_TRIGGER``;
- :mod:`flanlab.tasks.sandbox`: ``render(text, fields)``, ``placeholders(text)``;
- :mod:`flanlab.tasks.template`: ``Template``, ``TemplateFamily``, ``load_family``, ``builtin_family``;
- :mod:`flanlab.tasks.options`: the Flan answer-option styles;
- :mod:`flanlab.tasks.task`: ``Task``, ``Rendered``, ``render(task, fmt, split=, seed=)``;
- :mod:`flanlab.tasks.sources`: ``FileSource``, ``HFSource``, ``MemorySource``;
- :mod:`flanlab.tasks.bigbench`: BIG-bench ``task.json`` tasks from a folder or the sdist tarball;
- :mod:`flanlab.tasks.catalog`: the shipped catalog (``catalog()``, ``get_task``, ``list_tasks``).

Submodules are imported on use; importing this package stays cheap.
"""

from flanlab.tasks.formats import ALL_FORMATS, COT_FORMATS, FORMATS

__all__ = ["ALL_FORMATS", "COT_FORMATS", "FORMATS"]
