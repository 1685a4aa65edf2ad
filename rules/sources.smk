rule catalogue:
    output:
        catalogue=f"{RESULTS}/sources/catalogue.parquet",
    params:
        source=as_json(config["source"]),
        shards=config["shards"],
    log:
        f"{LOGS}/catalogue.log",
    message:
        "Listing the {config[source][kind]} source's videos over {params.shards} shards"
    shell:
        "senorita catalogue --source {params.source:q} --shards {params.shards}"
        " --out {output.catalogue} 2> {log}"
