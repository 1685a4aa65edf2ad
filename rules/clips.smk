rule clips:
    input:
        videos=rules.ingest.output.videos,
    output:
        clips=f"{RESULTS}/clips/{{shard}}.parquet",
        rejects=CLIP_REJECTS,
    log:
        f"{LOGS}/clips/{{shard}}.log",
    group:
        "shard"
    conda:
        "../envs/cpu.yaml"
    params:
        clips=as_json(config["clips"]),
        media=f"{RESULTS}/clips/{{shard}}",
    message:
        "Cutting the clips of shard {wildcards.shard}"
    shell:
        "senorita clips --videos {input.videos} --shard {wildcards.shard}"
        " --params {params.clips:q} --media {params.media}"
        " --out {output.clips} --rejects {output.rejects} 2> {log}"
