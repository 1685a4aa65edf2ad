rule tiny_models:
    output:
        directory(TINY_MODELS),
    log:
        f"{LOGS}/tiny_models.log",
    conda:
        "../envs/cpu.yaml"
    message:
        "Building tiny random models (the embedded default's stand-ins for real weights)"
    shell:
        "senorita tiny-models --out {output} 2> {log}"


rule control_maps:
    input:
        clips=rules.clips.output.clips,
        models=tiny_model_inputs(CONTROL_FAMILIES),
    output:
        maps=CONTROL,
        rejects=CONTROL_REJECTS,
    log:
        f"{LOGS}/control/{{shard}}.log",
    conda:
        "../envs/gpu.yaml"
    resources:
        gpu=gpus(CONTROL_FAMILIES),
        mem_mb=config["control"]["resources"]["mem_mb"],
        runtime=config["control"]["resources"]["runtime"],
    params:
        kinds=",".join(CONTROL_KINDS),
        control=as_json(config["control"]),
        models=as_json({f: config["models"][f] for f in CONTROL_FAMILIES}),
        encode=as_json(config["encode"]),
        media=f"{RESULTS}/control/{{shard}}",
    message:
        "Making the {params.kinds} maps of shard {wildcards.shard}"
    shell:
        "senorita control-maps --clips {input.clips} --shard {wildcards.shard} --kinds {params.kinds}"
        " --params {params.control:q} --models {params.models:q} --encode {params.encode:q}"
        " --media {params.media} --out {output.maps} --rejects {output.rejects} 2> {log}"
