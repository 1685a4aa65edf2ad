rule dedup:
    input:
        videos=expand(VIDEOS, shard=SHARDS),
        models=tiny_model_inputs(["clip"]),
    output:
        duplicates=DUPLICATES,
    log:
        f"{LOGS}/dedup.log",
    conda:
        "../envs/gpu.yaml"
    threads: config["dedup"]["workers"]
    resources:
        gpu=gpus(["clip"]),
        mem_mb=config["dedup"]["resources"]["mem_mb"],
        runtime=config["dedup"]["resources"]["runtime"],
    params:
        # One job over every shard (a video is compared with every earlier one); signatures are
        # cached beside the output, so a rerun embeds only new videos.
        videos=lambda wc: VIDEOS,
        shards=config["shards"],
        dedup=as_json({k: config["dedup"][k] for k in ("frames", "threshold")}),
        models=as_json({"clip": config["models"]["clip"]}),
    message:
        "Finding near-duplicate videos over {params.shards} shards"
    shell:
        "senorita dedup --videos {params.videos:q} --shards {params.shards}"
        " --params {params.dedup:q} --models {params.models:q} --workers {threads}"
        " --out {output.duplicates} 2> {log}"


rule clips:
    input:
        # Near duplicates get no clips (dedup.enabled).
        **({"duplicates": DUPLICATES} if config["dedup"]["enabled"] else {}),
        videos=rules.ingest.output.videos,
    output:
        clips=f"{RESULTS}/clips/{{shard}}.parquet",
        rejects=CLIP_REJECTS,
    log:
        f"{LOGS}/clips/{{shard}}.log",
    # One submission per shard with its operator pairs (and ingest, without dedup).
    group:
        "shard"
    conda:
        "../envs/cpu.yaml"
    params:
        clips=as_json(config["clips"]),
        duplicates=lambda wc, input: (
            f" --duplicates {input.duplicates}" if config["dedup"]["enabled"] else ""
        ),
        media=f"{RESULTS}/clips/{{shard}}",
    message:
        "Cutting the clips of shard {wildcards.shard}"
    shell:
        "senorita clips --videos {input.videos} --shard {wildcards.shard}"
        " --params {params.clips:q} --media {params.media}{params.duplicates}"
        " --out {output.clips} --rejects {output.rejects} 2> {log}"
