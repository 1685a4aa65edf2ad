rule ingest:
    input:
        catalogue=rules.catalogue.output.catalogue,
    output:
        videos=f"{RESULTS}/ingest/{{shard}}.parquet",
        rejects=INGEST_REJECTS,
    log:
        f"{LOGS}/ingest/{{shard}}.log",
    # With dedup, clips wait for every shard's ingest: ingest leaves the shard's group (a group
    # holding ingest and clips would wait on the dedup job between them).
    group:
        None if config["dedup"]["enabled"] else "shard"
    conda:
        "../envs/cpu.yaml"
    params:
        source=as_json(config["source"]),
        ingest=as_json(config["ingest"]),
        clips=as_json(config["clips"]),
        # Bumped when downloads were left for later: makes the next run rerun this job.
        retry=download_retry,
    message:
        "Probing the videos of shard {wildcards.shard}"
    shell:
        "senorita ingest --catalogue {input.catalogue} --shard {wildcards.shard}"
        " --source {params.source:q} --params {params.ingest:q} --clips {params.clips:q}"
        " --out {output.videos} --rejects {output.rejects} 2> {log}"
