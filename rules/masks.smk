rule masks:
    input:
        clips=rules.clips.output.clips,
        models=tiny_model_inputs(MASK_FAMILIES),
    output:
        masks=MASKS,
        rejects=MASK_REJECTS,
    log:
        f"{LOGS}/masks/{{shard}}.log",
    conda:
        "../envs/gpu.yaml"
    resources:
        gpu=gpus(MASK_FAMILIES),
        mem_mb=config["masks"]["resources"]["mem_mb"],
        runtime=config["masks"]["resources"]["runtime"],
    params:
        masks=as_json(config["masks"]),
        models=as_json({f: config["models"][f] for f in MASK_FAMILIES}),
        media=f"{RESULTS}/masks/{{shard}}",
    message:
        "Finding objects and their masks in the clips of shard {wildcards.shard}"
    shell:
        "senorita masks --clips {input.clips} --shard {wildcards.shard}"
        " --params {params.masks:q} --models {params.models:q}"
        " --media {params.media} --out {output.masks} --rejects {output.rejects} 2> {log}"
