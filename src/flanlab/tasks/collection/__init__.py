"""The Flan 2022 collection (Chung et al. 2022): 1,836 finetuning tasks and the adapters that load them.

* :mod:`.manifest` — the shipped manifest (Muffin 80, T0-SF 193, NIv2 1,554, CoT 9, with categories),
  built from ``flan_collection_info.csv`` by ``scripts/build_flan2022_manifest.py`` (:mod:`.build_manifest`).
* :mod:`.muffin` — Muffin (Flan 2021) datasets: hub mappings and our own template families.
* :mod:`.flan_repo` — a google-research/FLAN checkout's flan/v2 templates read as data (``ast``, never run);
  :mod:`.flan_render` renders with them as flan/v2 does (``--flan-repo``); :mod:`.cot` switches the CoT
  tasks to them; :mod:`.check_flan` reports every Flan 2022 task against the checkout.
* :mod:`.t0` — T0-SF from ``bigscience/P3`` rows or promptsource template files rendered in a sandbox.
* :mod:`.niv2` — natural-instructions task JSON in the Flan NIv2 layouts.
* :mod:`.dialog` — next-turn prediction over wiki_dialog / qrecc / taskmaster-shaped conversations.
* :mod:`.collection` — the tasks the catalog gets, and every task's data availability (local/hub/missing).
"""
