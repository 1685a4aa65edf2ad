rule filter_scores:
    input:
        pairs=expand(PAIRS, shard=SHARDS, allow_missing=True),
        models=tiny_model_inputs(["clip"]),
    output:
        scores=FILTER_SCORES,
    log:
        f"{LOGS}/filters/{{task}}.log",
    conda:
        "../envs/gpu.yaml"
    threads: config["filters"]["workers"]
    resources:
        gpu=gpus(["clip"]),
        mem_mb=config["filters"]["resources"]["mem_mb"],
        runtime=config["filters"]["resources"]["runtime"],
    params:
        # One job per task over all its shards (a pattern, as in the manifest rule): the filters
        # add one job per task to the DAG, not one per task and shard. Its own job, not part of
        # the task's manifest job, and thresholds are not here: changing one reruns only that
        # cheap job (which applies them), never the model.
        pairs=lambda wc: PAIRS.replace("{task}", wc.task),
        shards=config["shards"],
        scoring=as_json({k: config["filters"][k] for k in ("frames", "frozen_diff")}),
        models=as_json({"clip": config["models"]["clip"]}),
        dataset=DATASET,
    message:
        "Scoring the {wildcards.task} pairs for the quality, text and similarity filters"
    shell:
        "senorita filter-scores --task {wildcards.task} --pattern {params.pairs:q}"
        " --shards {params.shards} --dataset {params.dataset} --params {params.scoring:q}"
        " --models {params.models:q} --workers {threads} --out {output.scores} 2> {log}"


rule judge_scores:
    input:
        pairs=expand(PAIRS, shard=SHARDS, allow_missing=True),
        models=tiny_model_inputs(["judge"]),
    output:
        scores=JUDGE_SCORES,
    log:
        f"{LOGS}/filters/{{task}}.judge.log",
    conda:
        "../envs/gpu.yaml"
    threads: JUDGE["workers"]
    resources:
        gpu=gpus(["judge"]),
        mem_mb=JUDGE["resources"]["mem_mb"],
        runtime=JUDGE["resources"]["runtime"],
    params:
        # Like filter_scores: one job per task, and no thresholds here (the manifest applies
        # them). Verdicts are cached per pair beside the output, so a rerun asks only new pairs.
        pairs=lambda wc: PAIRS.replace("{task}", wc.task),
        shards=config["shards"],
        judging=as_json({"frames": JUDGE["frames"], "seed": config["seed"]}),
        models=as_json({"judge": config["models"]["judge"]}),
        dataset=DATASET,
    message:
        "Asking the VLM judge about the {wildcards.task} pairs"
    shell:
        "senorita judge-scores --task {wildcards.task} --pattern {params.pairs:q}"
        " --shards {params.shards} --dataset {params.dataset} --params {params.judging:q}"
        " --models {params.models:q} --workers {threads} --out {output.scores} 2> {log}"
