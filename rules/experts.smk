rule expert_checkpoint:
    input:
        expert_inputs,
    output:
        EXPERT_CHECK,
    log:
        f"{LOGS}/experts/{{expert}}.checkpoint.log",
    priority: 100  # first, so a missing checkpoint is reported before hours of other work
    localrule: True
    conda:
        "../envs/cpu.yaml"
    params:
        expert=lambda wc: as_json(config["experts"][wc.expert]),
        tasks=expert_tasks,
    message:
        "Checking the {wildcards.expert} checkpoint before any of its jobs run"
    shell:
        "senorita expert-checkpoint --name {wildcards.expert} --params {params.expert:q}"
        " --tasks {params.tasks} --out {output} 2> {log}"


rule llm_answers:
    input:
        unpack(get_llm_inputs),
        models=tiny_model_inputs(["llm"]),
    output:
        answers=LLM_CACHE,
    log:
        f"{LOGS}/llm/{{task}}/{{shard}}.log",
    wildcard_constraints:
        task="|".join(LLM_TASKS) or "no-task",
    conda:
        "../envs/gpu.yaml"
    resources:
        gpu=gpus(["llm"]),
        mem_mb=config["models"]["llm"]["resources"]["mem_mb"],
        runtime=config["models"]["llm"]["resources"]["runtime"],
    params:
        task=task_params,
        # Only what the questions read, so other expert settings do not re-ask the model.
        experts=as_json({k: config["experts"][k] for k in LLM_EXPERT_KEYS}),
        models=as_json({"llm": LLM_MODEL}),
        tables=table_flags,
        seed=config["seed"],
        max_words=config["instructions"]["max_words"],
    message:
        "Asking the language model the {wildcards.task} questions of shard {wildcards.shard}"
    shell:
        "senorita llm-answers --task {wildcards.task} --shard {wildcards.shard}"
        " --clips {input.clips} {params.tables} --params {params.task:q}"
        " --experts {params.experts:q} --models {params.models:q} --seed {params.seed}"
        " --max-words {params.max_words} --out {output.answers} 2> {log}"


rule expert_pairs:
    input:
        unpack(get_pair_inputs),
    output:
        pairs=PAIRS,
        rejects=PAIR_REJECTS,
    log:
        f"{LOGS}/pairs/{{task}}/{{shard}}.log",
    wildcard_constraints:
        task=tasks_of("expert"),
    conda:
        "../envs/gpu.yaml"
    resources:
        gpu=lambda wc: int(config["experts"][expert_of(wc)]["device"] != "cpu"),
        mem_mb=expert_resource("mem_mb"),
        runtime=expert_resource("runtime"),
    params:
        task=task_params,
        expert=expert_of,
        experts=lambda wc: as_json(config["experts"]),  # a function: prompts hold braces
        tables=table_flags,
        encode=as_json(config["encode"]),
        seed=config["seed"],
        dataset=DATASET,
        max_words=config["instructions"]["max_words"],
    message:
        "Making {wildcards.task} pairs for shard {wildcards.shard} with the {params.expert} expert"
    shell:
        "senorita expert-pairs --task {wildcards.task} --shard {wildcards.shard}"
        " --clips {input.clips} {params.tables}"
        " --params {params.task:q} --experts {params.experts:q}"
        " --seed {params.seed} --encode {params.encode:q} --dataset {params.dataset}"
        " --max-words {params.max_words} --out {output.pairs} --rejects {output.rejects}"
        " 2> {log}"
