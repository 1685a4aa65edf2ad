rule manifest:
    input:
        # The shard pair tables (read through the pattern below) come in through the scores job,
        # whose input they are: listing them here too would double their share of DAG planning.
        scores=FILTER_SCORES,
    output:
        manifest=MANIFEST,
    log:
        f"{LOGS}/manifest/{{task}}.log",
    conda:
        "../envs/cpu.yaml"
    params:
        # Patterns, not the file list: at thousands of shards the list would overflow the
        # kernel's 128 KiB limit on one argument (the shell command).
        pairs=lambda wc: PAIRS.replace("{task}", wc.task),
        shards=config["shards"],
        thresholds=lambda wc: as_json(config["filters"]["tasks"][wc.task]),
    message:
        "Writing the {wildcards.task} manifest"
    shell:
        "senorita manifest --out {output.manifest} --shards {params.shards}"
        " --pattern {params.pairs:q} --scores {input.scores}"
        " --thresholds {params.thresholds:q} 2> {log}"


rule dataset_card:
    input:
        catalogue=CATALOGUE,
        manifests=expand(MANIFEST, task=TASKS),
        videos=expand(VIDEOS, shard=SHARDS),
        clips=expand(CLIPS, shard=SHARDS),
        rejects=expand(INGEST_REJECTS, shard=SHARDS)
        + expand(CLIP_REJECTS, shard=SHARDS)
        + expand(PAIR_REJECTS, task=TASKS, shard=SHARDS)
        + (expand(CONTROL_REJECTS, shard=SHARDS) if CONTROL_KINDS else [])
        + (expand(MASK_REJECTS, shard=SHARDS) if NEEDS_MASKS else [])
        + (
            expand(CAPTION_REJECTS, shard=SHARDS)
            if config["captions"]["enabled"]
            else []
        ),
    output:
        card=f"{DATASET}/README.md",
        rejects=f"{DATASET}/rejects.parquet",
    log:
        f"{LOGS}/dataset_card.log",
    conda:
        "../envs/cpu.yaml"
    params:
        rejects=lambda wc: [INGEST_REJECTS, CLIP_REJECTS, PAIR_REJECTS]
        + ([CONTROL_REJECTS] if CONTROL_KINDS else [])
        + ([MASK_REJECTS] if NEEDS_MASKS else [])
        + ([CAPTION_REJECTS] if config["captions"]["enabled"] else []),
        shards=config["shards"],
        tasks=",".join(TASKS),
        videos=lambda wc: VIDEOS,
        clips=lambda wc: CLIPS,
    message:
        "Writing the dataset card"
    shell:
        "senorita card --catalogue {input.catalogue} --manifests {input.manifests}"
        " --shards {params.shards} --tasks {params.tasks} --rejects {params.rejects:q}"
        " --videos {params.videos:q} --clips {params.clips:q}"
        " --out {output.card} --rejects-out {output.rejects} 2> {log}"


rule webdataset:
    input:
        manifest=rules.manifest.output.manifest,
    output:
        shards=directory(f"{DATASET}/webdataset/{{task}}"),
    log:
        f"{LOGS}/webdataset/{{task}}.log",
    conda:
        "../envs/cpu.yaml"
    params:
        # The dataset root, from the manifest's path (<dataset>/<task>/manifest.parquet).
        dataset=lambda wc, input: Path(input.manifest).parent.parent,
    message:
        "Exporting the {wildcards.task} pairs as WebDataset tar shards"
    shell:
        "senorita webdataset --manifest {input.manifest} --dataset {params.dataset}"
        " --out {output.shards} 2> {log}"


for _task in TASKS:

    rule:
        name:
            f"task_{_task}"
        input:
            rules.manifest.output.manifest.format(task=_task),
