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


rule task_preview:
    input:
        manifest=rules.manifest.output.manifest,
    output:
        sheet=report(
            f"{RESULTS}/report/{{task}}/contact_sheet.png",
            caption="../workflow/report/contact_sheet.rst",
            category="Tasks",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "contact sheet"},
        ),
        gif=report(
            f"{RESULTS}/report/{{task}}/preview.gif",
            caption="../workflow/report/preview.rst",
            category="Tasks",
            subcategory="{task}",
            labels={"task": "{task}", "figure": "animated preview"},
        ),
    log:
        f"{LOGS}/report/{{task}}.log",
    conda:
        "../envs/cpu.yaml"
    params:
        # The dataset root, from the manifest's path (<dataset>/<task>/manifest.parquet).
        dataset=lambda wc, input: Path(input.manifest).parent.parent,
        pairs=config["report"]["sample_pairs"],
    message:
        "Drawing sample {wildcards.task} pairs for the report"
    shell:
        "senorita preview --manifest {input.manifest} --dataset {params.dataset}"
        " --pairs {params.pairs} --sheet {output.sheet} --gif {output.gif} 2> {log}"


rule report_tables:
    input:
        manifests=expand(MANIFEST, task=TASKS),
        rejects=f"{DATASET}/rejects.parquet",
    output:
        pairs=report(
            f"{RESULTS}/report/pairs_per_task.html",
            caption="../workflow/report/pairs_per_task.rst",
            category="Dataset",
            labels={"table": "pairs per task"},
        ),
        filters=report(
            f"{RESULTS}/report/filter_pass_rates.html",
            caption="../workflow/report/filter_pass_rates.rst",
            category="Dataset",
            labels={"table": "filter pass rates"},
        ),
        rejects=report(
            f"{RESULTS}/report/rejects.html",
            caption="../workflow/report/rejects.rst",
            category="Dataset",
            labels={"table": "rejected inputs"},
        ),
    log:
        f"{LOGS}/report/tables.log",
    conda:
        "../envs/cpu.yaml"
    message:
        "Tabulating pairs per task and rejects"
    shell:
        "senorita summary --manifests {input.manifests} --rejects {input.rejects}"
        " --pairs-out {output.pairs} --filters-out {output.filters}"
        " --rejects-out {output.rejects} 2> {log}"
