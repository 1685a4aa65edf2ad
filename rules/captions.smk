rule captions:
    input:
        clips=rules.clips.output.clips,
        models=tiny_model_inputs(["captioner", "clip"]),
    output:
        captions=CAPTIONS,
        rejects=CAPTION_REJECTS,
    log:
        f"{LOGS}/captions/{{shard}}.log",
    conda:
        "../envs/gpu.yaml"
    resources:
        gpu=gpus(["captioner"]),
        mem_mb=config["captions"]["resources"]["mem_mb"],
        runtime=config["captions"]["resources"]["runtime"],
    params:
        captions=as_json(config["captions"]),
        models=as_json({f: config["models"][f] for f in ["captioner", "clip"]}),
    message:
        "Captioning the clips of shard {wildcards.shard}"
    shell:
        "senorita captions --clips {input.clips} --shard {wildcards.shard}"
        " --params {params.captions:q} --models {params.models:q}"
        " --out {output.captions} --rejects {output.rejects} 2> {log}"
