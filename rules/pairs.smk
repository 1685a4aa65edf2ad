rule operator_pairs:
    input:
        clips=rules.clips.output.clips,
        videos=rules.ingest.output.videos,
    output:
        pairs=PAIRS,
        rejects=PAIR_REJECTS,
    log:
        f"{LOGS}/pairs/{{task}}/{{shard}}.log",
    wildcard_constraints:
        task="|".join(OPERATOR_TASKS) or "no-task",
    group:
        "shard"
    conda:
        "../envs/cpu.yaml"
    params:
        task=lambda wc: as_json(config["tasks"][wc.task]),
        encode=as_json(config["encode"]),
        seed=config["seed"],
        dataset=DATASET,
        max_words=config["instructions"]["max_words"],
    message:
        "Making {wildcards.task} pairs for shard {wildcards.shard}"
    shell:
        "senorita pairs --task {wildcards.task} --shard {wildcards.shard}"
        " --clips {input.clips} --videos {input.videos} --params {params.task:q}"
        " --seed {params.seed} --encode {params.encode:q} --dataset {params.dataset}"
        " --max-words {params.max_words}"
        " --out {output.pairs} --rejects {output.rejects} 2> {log}"


rule control_pairs:
    input:
        clips=rules.clips.output.clips,
        videos=rules.ingest.output.videos,
        control=rules.control_maps.output.maps,
    output:
        pairs=PAIRS,
        rejects=PAIR_REJECTS,
    log:
        f"{LOGS}/pairs/{{task}}/{{shard}}.log",
    wildcard_constraints:
        task="|".join(CONTROL_TASKS) or "no-task",
    conda:
        "../envs/cpu.yaml"
    params:
        task=lambda wc: as_json(config["tasks"][wc.task]),
        seed=config["seed"],
        dataset=DATASET,
    message:
        "Making {wildcards.task} pairs for shard {wildcards.shard} from its control maps"
    shell:
        "senorita control-pairs --task {wildcards.task} --shard {wildcards.shard}"
        " --clips {input.clips} --videos {input.videos} --control {input.control}"
        " --params {params.task:q} --seed {params.seed} --dataset {params.dataset}"
        " --out {output.pairs} --rejects {output.rejects} 2> {log}"


rule grounding_pairs:
    input:
        clips=rules.clips.output.clips,
        videos=rules.ingest.output.videos,
        masks=rules.masks.output.masks,
    output:
        pairs=PAIRS,
        rejects=PAIR_REJECTS,
    log:
        f"{LOGS}/pairs/{{task}}/{{shard}}.log",
    wildcard_constraints:
        task="|".join(MASK_TASKS) or "no-task",
    conda:
        "../envs/cpu.yaml"
    params:
        task=lambda wc: as_json(config["tasks"][wc.task]),
        encode=as_json(config["encode"]),
        seed=config["seed"],
        dataset=DATASET,
        max_words=config["instructions"]["max_words"],
    message:
        "Making {wildcards.task} pairs for shard {wildcards.shard} from its object masks"
    shell:
        "senorita grounding-pairs --task {wildcards.task} --shard {wildcards.shard}"
        " --clips {input.clips} --videos {input.videos} --masks {input.masks}"
        " --params {params.task:q} --seed {params.seed} --encode {params.encode:q}"
        " --dataset {params.dataset} --max-words {params.max_words}"
        " --out {output.pairs} --rejects {output.rejects} 2> {log}"
