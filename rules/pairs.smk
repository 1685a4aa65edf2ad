# The pair stages: one rule each (operator, control, grounding, reversed here; expert in
# experts.smk), every task's job one per shard. Which tasks each rule makes comes from the task
# registry (senorita/tasks.py, through tasks_of). Every task of these four stages reads the same
# tables (the registry's STAGE_READS), so their inputs are plain patterns: no function runs per
# job, which at 2,000 shards is tens of thousands of calls saved in planning. Expert tasks each
# read their own (get_pair_inputs).


rule operator_pairs:
    input:
        clips=CLIPS,
    output:
        pairs=PAIRS,
        rejects=PAIR_REJECTS,
    log:
        f"{LOGS}/pairs/{{task}}/{{shard}}.log",
    wildcard_constraints:
        task=tasks_of("operator"),
    group:
        "shard"
    conda:
        "../envs/cpu.yaml"
    params:
        task=task_params,
        encode=as_json(config["encode"]),
        seed=config["seed"],
        dataset=DATASET,
        max_words=config["instructions"]["max_words"],
    message:
        "Making {wildcards.task} pairs for shard {wildcards.shard}"
    shell:
        "senorita operator-pairs --task {wildcards.task} --shard {wildcards.shard}"
        " --clips {input.clips} --params {params.task:q} --seed {params.seed}"
        " --encode {params.encode:q} --dataset {params.dataset} --max-words {params.max_words}"
        " --out {output.pairs} --rejects {output.rejects} 2> {log}"


rule control_pairs:
    input:
        clips=CLIPS,
        control=CONTROL,
    output:
        pairs=PAIRS,
        rejects=PAIR_REJECTS,
    log:
        f"{LOGS}/pairs/{{task}}/{{shard}}.log",
    wildcard_constraints:
        task=tasks_of("control"),
    conda:
        "../envs/cpu.yaml"
    params:
        task=task_params,
        seed=config["seed"],
        dataset=DATASET,
    message:
        "Making {wildcards.task} pairs for shard {wildcards.shard} from its control maps"
    shell:
        "senorita control-pairs --task {wildcards.task} --shard {wildcards.shard}"
        " --clips {input.clips} --control {input.control} --params {params.task:q}"
        " --seed {params.seed} --dataset {params.dataset}"
        " --out {output.pairs} --rejects {output.rejects} 2> {log}"


rule grounding_pairs:
    input:
        clips=CLIPS,
        masks=MASKS,
    output:
        pairs=PAIRS,
        rejects=PAIR_REJECTS,
    log:
        f"{LOGS}/pairs/{{task}}/{{shard}}.log",
    wildcard_constraints:
        task=tasks_of("grounding"),
    conda:
        "../envs/cpu.yaml"
    params:
        task=task_params,
        encode=as_json(config["encode"]),
        seed=config["seed"],
        dataset=DATASET,
        max_words=config["instructions"]["max_words"],
    message:
        "Making {wildcards.task} pairs for shard {wildcards.shard} from its object masks"
    shell:
        "senorita grounding-pairs --task {wildcards.task} --shard {wildcards.shard}"
        " --clips {input.clips} --masks {input.masks} --params {params.task:q}"
        " --seed {params.seed} --encode {params.encode:q} --dataset {params.dataset}"
        " --max-words {params.max_words} --out {output.pairs} --rejects {output.rejects}"
        " 2> {log}"


rule reversed_pairs:
    input:
        clips=CLIPS,
        forward=get_forward_pairs,
    output:
        pairs=PAIRS,
        rejects=PAIR_REJECTS,
    log:
        f"{LOGS}/pairs/{{task}}/{{shard}}.log",
    wildcard_constraints:
        task=tasks_of("reversed"),
    conda:
        "../envs/cpu.yaml"
    params:
        task=task_params,
        seed=config["seed"],
        dataset=DATASET,
        max_words=config["instructions"]["max_words"],
    message:
        "Making {wildcards.task} pairs for shard {wildcards.shard} by reversing {input.forward}"
    shell:
        "senorita reversed-pairs --task {wildcards.task} --shard {wildcards.shard}"
        " --clips {input.clips} --forward {input.forward} --params {params.task:q}"
        " --seed {params.seed} --dataset {params.dataset} --max-words {params.max_words}"
        " --out {output.pairs} --rejects {output.rejects} 2> {log}"
