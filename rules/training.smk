rule train_expert:
    input:
        # The annotated shards the expert's data view reads (the job reads them by pattern).
        tables=lambda wc: expand(
            list(training_tables(wc.expert).values()), shard=SHARDS
        ),
        models=lambda wc: _tiny_inside([config["experts"][wc.expert]["train"]["init"]]),
    output:
        final=directory(TRAINED),
        curve=report(
            f"{TRAINING}/loss.png",
            caption="../workflow/report/training.rst",
            category="Training",
            subcategory="{expert}",
        ),
    log:
        f"{LOGS}/training/{{expert}}.log",
    wildcard_constraints:
        expert="|".join(EXPERTS),
    # The longest chain (training, then the expert's pairs, their scores and manifests): started
    # as soon as its tables are ready, not after every operator and control job queued before it.
    priority: 50
    conda:
        "../envs/gpu.yaml"
    threads: lambda wc: config["experts"][wc.expert]["train"]["resources"]["cpus_per_task"]
    resources:
        gpu=lambda wc: config["experts"][wc.expert]["train"]["resources"]["gpus"],
        cpus_per_task=lambda wc: config["experts"][wc.expert]["train"]["resources"][
            "cpus_per_task"
        ],
        mem_mb=lambda wc: config["experts"][wc.expert]["train"]["resources"]["mem_mb"],
        runtime=lambda wc: config["experts"][wc.expert]["train"]["resources"]["runtime"],
    params:
        train=lambda wc: as_json(config["experts"][wc.expert]["train"]),
        # The results folder and the work folder, from the paths (results/clips/<shard>.parquet).
        results=lambda wc, input: Path(input.tables[0]).parent.parent,
        shards=config["shards"],
        work=lambda wc, output: Path(output.curve).parent,
        # One process per GPU on the node, launched by accelerate inside the job.
        launch=lambda wc: launcher(
            config["experts"][wc.expert]["train"]["resources"]["gpus"]
        ),
    message:
        "Training the {wildcards.expert} expert"
    shell:
        "{params.launch} train-expert --expert {wildcards.expert} --params {params.train:q}"
        " --results {params.results} --shards {params.shards} --work {params.work}"
        " --out {output.final} 2> {log}"


for _expert in EXPERTS:

    rule:
        name:
            f"train_{_expert}"
        default_target: False
        input:
            TRAINED.format(expert=_expert),
