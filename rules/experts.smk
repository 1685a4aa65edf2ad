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
        tasks=lambda wc: ",".join(t for t, e in EXPERT_OF.items() if e == wc.expert),
    message:
        "Checking the {wildcards.expert} checkpoint before any of its jobs run"
    shell:
        "senorita check-expert --name {wildcards.expert} --params {params.expert:q}"
        " --tasks {params.tasks} --out {output} 2> {log}"


rule llm_answers:
    input:
        clips=rules.clips.output.clips,
        masks=lambda wc: MASKS if wc.task != "global_stylization" else [],
        captions=lambda wc: CAPTIONS if wc.task in CAPTION_EXPERT_TASKS else [],
        models=tiny_model_inputs(["llm"]),
    output:
        answers=LLM_CACHE,
    log:
        f"{LOGS}/llm/{{task}}/{{shard}}.log",
    wildcard_constraints:
        task="|".join(LLM_EXPERT_TASKS) or "no-task",
    conda:
        "../envs/gpu.yaml"
    resources:
        gpu=gpus(["llm"]),
        mem_mb=config["models"]["llm"]["resources"]["mem_mb"],
        runtime=config["models"]["llm"]["resources"]["runtime"],
    params:
        task=lambda wc: as_json(config["tasks"][wc.task]),
        # Only what the questions read, so other expert settings do not re-ask the model.
        experts=as_json({k: config["experts"][k] for k in LLM_EXPERT_KEYS}),
        models=as_json({"llm": LLM_MODEL}),
        optional=lambda wc, input: " ".join(
            f"--{k} {getattr(input, k)}"
            for k in ("masks", "captions")
            if getattr(input, k, None)
        ),
        seed=config["seed"],
        max_words=config["instructions"]["max_words"],
    message:
        "Asking the language model the {wildcards.task} questions of shard {wildcards.shard}"
    shell:
        "senorita llm-answers --task {wildcards.task} --shard {wildcards.shard}"
        " --clips {input.clips} {params.optional} --params {params.task:q}"
        " --experts {params.experts:q} --models {params.models:q} --seed {params.seed}"
        " --max-words {params.max_words} --out {output.answers} 2> {log}"


rule expert_pairs:
    input:
        checkpoint=lambda wc: EXPERT_CHECK.format(expert=EXPERT_OF[wc.task]),
        clips=rules.clips.output.clips,
        videos=rules.ingest.output.videos,
        masks=lambda wc: MASKS if wc.task != "global_stylization" else [],
        control=lambda wc: CONTROL if wc.task in CONTROL_EXPERT_TASKS else [],
        captions=lambda wc: CAPTIONS if wc.task in CAPTION_EXPERT_TASKS else [],
        # The language model's answers (its own job): the expert job never loads it.
        cache=lambda wc: LLM_CACHE if wc.task in LLM_EXPERT_TASKS else [],
    output:
        pairs=PAIRS,
        rejects=PAIR_REJECTS,
    log:
        f"{LOGS}/pairs/{{task}}/{{shard}}.log",
    wildcard_constraints:
        task="|".join(EXPERT_TASKS) or "no-task",
    conda:
        "../envs/gpu.yaml"
    resources:
        gpu=lambda wc: int(config["experts"][EXPERT_OF[wc.task]]["device"] != "cpu"),
        mem_mb=lambda wc: config["experts"][EXPERT_OF[wc.task]]["resources"]["mem_mb"],
        runtime=lambda wc: config["experts"][EXPERT_OF[wc.task]]["resources"]["runtime"],
    params:
        task=lambda wc: as_json(config["tasks"][wc.task]),
        expert=lambda wc: EXPERT_OF[wc.task],
        experts=lambda wc: as_json(config["experts"]),
        optional=lambda wc, input: " ".join(
            f"--{k} {getattr(input, k)}"
            for k in ("masks", "control", "captions", "cache")
            if getattr(input, k, None)
        ),
        encode=as_json(config["encode"]),
        seed=config["seed"],
        dataset=DATASET,
        max_words=config["instructions"]["max_words"],
    message:
        "Making {wildcards.task} pairs for shard {wildcards.shard} with the {params.expert} expert"
    shell:
        "senorita expert-pairs --task {wildcards.task} --shard {wildcards.shard}"
        " --clips {input.clips} --videos {input.videos} {params.optional}"
        " --params {params.task:q} --experts {params.experts:q}"
        " --seed {params.seed} --encode {params.encode:q} --dataset {params.dataset}"
        " --max-words {params.max_words} --out {output.pairs} --rejects {output.rejects}"
        " 2> {log}"


rule reversed_pairs:
    input:
        clips=rules.clips.output.clips,
        videos=rules.ingest.output.videos,
        forward=PAIRS.replace("{task}", "object_removal"),
    output:
        pairs=PAIRS,
        rejects=PAIR_REJECTS,
    log:
        f"{LOGS}/pairs/{{task}}/{{shard}}.log",
    wildcard_constraints:
        task="|".join(REVERSED_TASKS) or "no-task",
    conda:
        "../envs/cpu.yaml"
    params:
        task=lambda wc: as_json(config["tasks"][wc.task]),
        seed=config["seed"],
        dataset=DATASET,
        max_words=config["instructions"]["max_words"],
    message:
        "Making {wildcards.task} pairs for shard {wildcards.shard} by reversing object_removal's"
    shell:
        "senorita reversed-pairs --task {wildcards.task} --shard {wildcards.shard}"
        " --clips {input.clips} --videos {input.videos} --forward {input.forward}"
        " --params {params.task:q} --seed {params.seed} --dataset {params.dataset}"
        " --max-words {params.max_words} --out {output.pairs} --rejects {output.rejects} 2> {log}"
