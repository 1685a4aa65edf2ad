rule device_report:
    output:
        report=f"{RESULTS}/device_report.json",
    log:
        f"{LOGS}/device_report.log",
    conda:
        "../envs/gpu.yaml"
    resources:
        gpu=1,
    message:
        "Recording the GPUs a GPU job is given and can use"
    shell:
        "senorita device-report --out {output.report} 2> {log}"
