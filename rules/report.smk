# The run's versions file. The report's pictures of each task come from its manifest job and the
# summary tables from the dataset card's job (rules/dataset.smk): they read the same tables.


rule versions:
    output:
        versions=report(
            f"{RESULTS}/provenance/versions.json",
            caption="../workflow/report/versions.rst",
            category="Provenance",
        ),
    log:
        f"{LOGS}/versions.log",
    conda:
        "../envs/cpu.yaml"
    params:
        config=lambda wc: as_json(config),  # a function: prompt templates hold braces
    message:
        "Recording code, package and config versions"
    shell:
        "senorita versions --config {params.config:q} --out {output.versions} 2> {log}"
