# Señorita-style video-editing dataset construction.
#
#   sources  -> catalogue of videos, each assigned to a shard   (rules/sources.smk)
#   ingest   -> per shard: probe, accept or reject each video   (rules/ingest.smk)
#   clips    -> per shard: shot-aware 33-frame clips            (rules/clips.smk)
#   captions -> per shard: a BLIP-2 caption per clip            (rules/captions.smk)
#   control  -> per shard: depth, HED, scribble maps per clip   (rules/control.smk)
#   masks    -> per shard: object phrases, boxes, SAM2 masks    (rules/masks.smk)
#   pairs    -> per task and shard: source/target pairs         (rules/pairs.smk)
#   experts  -> per task and shard: expert-made pairs           (rules/experts.smk)
#   training -> per expert: train it on the annotated shards    (rules/training.smk)
#   filters  -> per task: quality, text and similarity scores   (rules/filters.smk)
#   dataset  -> per task: manifest, report pictures, tars;      (rules/dataset.smk)
#               per run: dataset card, rejects, report tables
#   report   -> versions file                                   (rules/report.smk)
#
# Which tasks exist, which pair stage makes each and what its jobs read: the task registry
# (workflow/senorita/tasks.py), read by rules/common.smk.
#
# `snakemake --cores 2 all` builds every enabled task; `snakemake task_<id>` builds one.


include: "rules/common.smk"
include: "rules/sources.smk"
include: "rules/ingest.smk"
include: "rules/clips.smk"
include: "rules/captions.smk"
include: "rules/control.smk"
include: "rules/masks.smk"
include: "rules/pairs.smk"
include: "rules/experts.smk"
include: "rules/training.smk"
include: "rules/filters.smk"
include: "rules/dataset.smk"
include: "rules/report.smk"
include: "rules/devices.smk"


report: "workflow/report/workflow.rst"


rule all:
    default_target: True
    input:
        rules.dataset_card.output.card,
        expand(rules.manifest.output.manifest, task=TASKS),
        rules.versions.output.versions,
        rules.device_report.output.report,
        expand(CAPTIONS, shard=SHARDS) if config["captions"]["enabled"] else [],
