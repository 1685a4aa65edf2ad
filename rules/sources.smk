rule catalogue:
    output:
        catalogue=CATALOGUE,
    log:
        f"{LOGS}/catalogue.log",
    conda:
        "../envs/cpu.yaml"
    params:
        source=as_json(config["source"]),
        shards=config["shards"],
    message:
        "Listing the {config[source][kind]} source's videos over {params.shards} shards"
    shell:
        "senorita catalogue --source {params.source:q} --shards {params.shards}"
        " --out {output.catalogue} 2> {log}"
