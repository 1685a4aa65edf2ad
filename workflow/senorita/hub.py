"""The dataset folder as a Hugging Face dataset repository: the card's YAML front matter.

``datasets.load_dataset(<folder>, <config>)`` reads the configs named here, wherever the folder is
copied (every path is relative to it), and ``huggingface-cli upload`` publishes it as it is.

Configs (all with one ``train`` split):

- ``all`` (the default): the kept pairs of every task, what a training run takes;
- ``<task>``: the kept pairs of one task;
- ``unfiltered``: every pair of every task with its scores, ``kept`` and ``filter_reason``, for
  auditing the filters.

The kept-only views are the manifests read through a row filter (``kept == true``), so there is
one table per task and the views cannot drift from it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from huggingface_hub import DatasetCardData

KEPT = ("kept", "==", True)
DEFAULT_CONFIG = "all"
UNFILTERED_CONFIG = "unfiltered"
# Licence ids the Hub knows, as the first word of a licence string (an SPDX id, any case).
HUB_LICENCES = {
    "apache-2.0",
    "mit",
    "cc0-1.0",
    "cc-by-2.0",
    "cc-by-3.0",
    "cc-by-4.0",
    "cc-by-sa-3.0",
    "cc-by-sa-4.0",
    "cc-by-nc-2.0",
    "cc-by-nc-3.0",
    "cc-by-nc-4.0",
    "cc-by-nc-sa-4.0",
    "cc-by-nc-nd-4.0",
    "cc-by-nd-4.0",
    "odc-by",
    "odbl",
    "pddl",
}
# Free-to-use licences without a Hub id: "other" with a name and a link.
NAMED_LICENCES = {"pexels license": ("pexels-license", "https://www.pexels.com/license/")}
# The Hub's size categories, by upper bound.
SIZES = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
]


def size_category(n: int) -> str:
    """The Hub's size category for ``n`` rows."""
    return next((name for bound, name in SIZES if n < bound), "n>100M")


def hub_licence(licence: str | None) -> tuple[str, str | None, str | None]:
    """(Hub licence id, licence name, link) for a licence string as the sources record it.

    "CC0-1.0 (generated)" is ``cc0-1.0``; the Pexels licence is ``other`` with its name and link;
    a missing licence is ``unknown``; anything else is ``other`` named by its words.
    """
    if not licence or licence.lower() == "unknown":
        return "unknown", None, None
    first = licence.split()[0].lower()
    if first in HUB_LICENCES:
        return first, None, None
    lowered = licence.lower()
    for words, (name, link) in NAMED_LICENCES.items():
        if lowered.startswith(words):
            return "other", name, link
    link = next(iter(re.findall(r"https?://[^\s)]+", licence)), None)
    name = re.sub(r"[^a-z0-9]+", "-", re.sub(r"\(.*?\)", "", lowered)).strip("-")
    return "other", name or "other", link


def configs(kept: Mapping[str, int], total: Mapping[str, int]) -> list[dict]:
    """The ``configs`` of the front matter, from the kept and total pairs per task (registry
    order).

    ``datasets`` cannot give an empty split, so a task without kept pairs has no config of its
    own (its pairs are in ``unfiltered``), and without any kept pair ``unfiltered`` is the
    default. No two configs share a list object: shared ones would come out as YAML anchors.
    """
    manifests = [f"{t}/manifest.parquet" for t, n in total.items() if n]
    if not manifests:
        return []
    out = []
    if any(kept.values()):
        out.append(
            {
                "config_name": DEFAULT_CONFIG,
                "default": True,
                "data_files": [{"split": "train", "path": list(manifests)}],
                "filters": [list(KEPT)],
            }
        )
    out += [
        {
            "config_name": task,
            "data_files": [{"split": "train", "path": f"{task}/manifest.parquet"}],
            "filters": [list(KEPT)],
        }
        for task, n in kept.items()
        if n
    ]
    unfiltered = {
        "config_name": UNFILTERED_CONFIG,
        "data_files": [{"split": "train", "path": list(manifests)}],
    }
    return [*out, unfiltered if out else {**unfiltered, "default": True}]


def front_matter(
    pairs: Mapping[str, int], kept: Mapping[str, int], licences: Mapping[str | None, int]
) -> str:
    """The card's YAML front matter (between ``---`` lines) for the pairs and the kept pairs per
    task (registry order) and the pairs per licence string."""
    if invalid := [t for t in pairs if t in (DEFAULT_CONFIG, UNFILTERED_CONFIG)]:
        raise ValueError(f"task ids {invalid} collide with the dataset configs' names")
    hub = sorted({hub_licence(lic) for lic in licences}, key=lambda h: [x or "" for x in h])
    ids = sorted({h[0] for h in hub})
    named = [h for h in hub if h[1]]
    extra = {}
    if len(named) == 1:  # the Hub takes one name and link for "other"
        extra = {"license_name": named[0][1], "license_link": named[0][2]}
    data = DatasetCardData(
        license=ids[0] if len(ids) == 1 else ids,
        task_categories=["video-to-video", "text-to-video"],
        tags=["video-editing", "instruction-based-editing", "senorita"],
        size_categories=[size_category(sum(pairs.values()))],
        pretty_name="Señorita-style video editing pairs",
        configs=configs(kept, pairs) or None,
        **{k: v for k, v in extra.items() if v},
    )
    return f"---\n{data.to_yaml()}\n---\n"
