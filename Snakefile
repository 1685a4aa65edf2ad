# Señorita-style video-editing dataset construction.
#
#   sources  -> catalogue of videos, each assigned to a shard   (rules/sources.smk)
#   ingest   -> per shard: probe, accept or reject each video   (rules/ingest.smk)
#   clips    -> per shard: shot-aware 33-frame clips            (rules/clips.smk)
#   control  -> per shard: depth, HED, scribble maps per clip   (rules/control.smk)
#   pairs    -> per task and shard: source/target pairs         (rules/pairs.smk)
#   filters  -> per task: quality, text and similarity scores   (rules/filters.smk)
#   dataset  -> per task manifest, dataset card, rejects        (rules/dataset.smk)
#
# `snakemake --cores 2 all` builds every enabled task; `snakemake task_<id>` builds one.


include: "rules/common.smk"
include: "rules/sources.smk"
include: "rules/ingest.smk"
include: "rules/clips.smk"
include: "rules/control.smk"
include: "rules/pairs.smk"
include: "rules/filters.smk"
include: "rules/dataset.smk"


rule all:
    default_target: True
    input:
        rules.dataset_card.output.card,
        expand(rules.manifest.output.manifest, task=TASKS),
