rule manifest:
    input:
        pairs=expand(
            rules.operator_pairs.output.pairs, shard=SHARDS, allow_missing=True
        ),
    output:
        manifest=f"{DATASET}/{{task}}/manifest.parquet",
    log:
        f"{LOGS}/manifest/{{task}}.log",
    group:
        "dataset"
    conda:
        "../envs/cpu.yaml"
    message:
        "Writing the {wildcards.task} manifest"
    shell:
        "senorita manifest --out {output.manifest} {input.pairs} 2> {log}"


rule dataset_card:
    input:
        catalogue=rules.catalogue.output.catalogue,
        manifests=expand(rules.manifest.output.manifest, task=TASKS),
        rejects=expand(rules.ingest.output.rejects, shard=SHARDS)
        + expand(rules.clips.output.rejects, shard=SHARDS)
        + expand(rules.operator_pairs.output.rejects, task=TASKS, shard=SHARDS),
    output:
        card=f"{DATASET}/README.md",
        rejects=f"{DATASET}/rejects.parquet",
    log:
        f"{LOGS}/dataset_card.log",
    group:
        "dataset"
    conda:
        "../envs/cpu.yaml"
    message:
        "Writing the dataset card"
    shell:
        "senorita card --catalogue {input.catalogue} --manifests {input.manifests}"
        " --rejects {input.rejects} --out {output.card} --rejects-out {output.rejects} 2> {log}"


for _task in TASKS:

    rule:
        name:
            f"task_{_task}"
        input:
            rules.manifest.output.manifest.format(task=_task),
