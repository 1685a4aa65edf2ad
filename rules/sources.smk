# The catalogue job is the only one that talks to the Pexels API, so with source.kind pexels it
# runs on the submitting host (a local rule), and only it sees the key: jobs sent to a cluster
# carry none (rules/common.smk keeps it out of their environment).
rule catalogue:
    output:
        catalogue=CATALOGUE,
    log:
        f"{LOGS}/catalogue.log",
    localrule: config["source"]["kind"] == "pexels"
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
