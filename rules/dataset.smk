# Per task, one job after its scores: the manifest (thresholds applied), the report's pictures of
# it and its WebDataset tars, all read from the same pairs in one process. Scoring stays its own
# job (rules/filters.smk): thresholds are a param here, not there, so changing one never re-scores.
# Then one job for the run: the dataset card, the rejects table and the report's summary tables.

# Where the task's WebDataset tars go, when the export is on (export.webdataset).
WEBDATASET = f"{DATASET}/webdataset/{{task}}"


rule manifest:
    input:
        # The judge's verdicts, when it runs.
        **({"verdicts": JUDGE_SCORES} if JUDGE["enabled"] else {}),
        # The shard pair tables (read through the pattern below) come in through the scores job,
        # whose input they are: listing them here too would double their share of DAG planning.
        scores=FILTER_SCORES,
    output:
        # The task's WebDataset tars, only when the export is on.
        **({"shards": directory(WEBDATASET)} if config["export"]["webdataset"] else {}),
        # The kept pairs the judge scored lowest, when it runs.
        **(
            {
                "judge_sheet": report(
                    f"{RESULTS}/report/{{task}}/judge_lowest.png",
                    caption="../workflow/report/judge_lowest.rst",
                    category="Tasks",
                    subcategory="{task}",
                    labels={"task": "{task}", "figure": "lowest judged"},
                )
            }
            if JUDGE["enabled"]
            else {}
        ),
        # The expert's working-size targets beside the lifted ones, with super-resolution on.
        **(
            {
                "sr_sheet": report(
                    f"{RESULTS}/report/{{task}}/super_resolution.png",
                    caption="../workflow/report/super_resolution.rst",
                    category="Tasks",
                    subcategory="{task}",
                    labels={"task": "{task}", "figure": "super-resolution"},
                )
            }
            if SUPER_RESOLUTION
            else {}
        ),
        manifest=MANIFEST,
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
        f"{LOGS}/manifest/{{task}}.log",
    conda:
        "../envs/cpu.yaml"
    params:
        # Patterns, not the file list: at thousands of shards the list would overflow the
        # kernel's 128 KiB limit on one argument (the shell command).
        pairs=lambda wc: PAIRS.replace("{task}", wc.task),
        shards=config["shards"],
        thresholds=manifest_thresholds,
        judge=judge_flags,
        # The dataset root: the manifest's folder's parent (<dataset>/<task>/manifest.parquet).
        dataset=lambda wc, output: Path(output.manifest).parent.parent,
        sample_pairs=config["report"]["sample_pairs"],
    message:
        "Writing the {wildcards.task} manifest, its report pictures"
        + (" and its WebDataset tars" if config["export"]["webdataset"] else "")
    shell:
        "senorita manifest --task {wildcards.task} --out {output.manifest}"
        " --shards {params.shards} --pattern {params.pairs:q} --scores {input.scores}"
        " --thresholds {params.thresholds:q}{params.judge} --dataset {params.dataset}"
        " --sheet {output.sheet} --gif {output.gif} --pairs {params.sample_pairs}"
        + (" --judge-sheet {output.judge_sheet}" if JUDGE["enabled"] else "")
        + (" --sr-sheet {output.sr_sheet}" if SUPER_RESOLUTION else "")
        + (" --webdataset {output.shards}" if config["export"]["webdataset"] else "")
        + " 2> {log}"


rule dataset_card:
    input:
        catalogue=CATALOGUE,
        manifests=expand(MANIFEST, task=TASKS),
        tables=card_waits_for(),
    output:
        **(
            {
                "judge": report(
                    f"{RESULTS}/report/judge.html",
                    caption="../workflow/report/judge.rst",
                    category="Dataset",
                    labels={"table": "VLM judge"},
                )
            }
            if JUDGE["enabled"]
            else {}
        ),
        card=f"{DATASET}/README.md",
        rejects=f"{DATASET}/rejects.parquet",
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
        rejects_html=report(
            f"{RESULTS}/report/rejects.html",
            caption="../workflow/report/rejects.rst",
            category="Dataset",
            labels={"table": "rejected inputs"},
        ),
    log:
        f"{LOGS}/dataset_card.log",
    conda:
        "../envs/cpu.yaml"
    params:
        # Patterns with {shard}/{task} fields: functions, which Snakemake does not format.
        rejects=lambda wc: [INGEST_REJECTS, CLIP_REJECTS, PAIR_REJECTS]
        + ([CONTROL_REJECTS] if CONTROL_KINDS else [])
        + ([MASK_REJECTS] if NEEDS_MASKS else [])
        + ([CAPTION_REJECTS] if config["captions"]["enabled"] else []),
        shards=config["shards"],
        tasks=",".join(TASKS),
        videos=lambda wc: VIDEOS,
        clips=lambda wc: CLIPS,
    message:
        "Writing the dataset card and the report's tables"
    shell:
        "senorita dataset-card --catalogue {input.catalogue} --manifests {input.manifests}"
        " --shards {params.shards} --tasks {params.tasks} --rejects {params.rejects:q}"
        " --videos {params.videos:q} --clips {params.clips:q}"
        " --out {output.card} --rejects-out {output.rejects}"
        " --pairs-html {output.pairs} --filters-html {output.filters}"
        " --rejects-html {output.rejects_html}"
        + (" --judge-html {output.judge}" if JUDGE["enabled"] else "")
        + " 2> {log}"


for _task in TASKS:

    rule:
        name:
            f"task_{_task}"
        input:
            rules.manifest.output.manifest.format(task=_task),
