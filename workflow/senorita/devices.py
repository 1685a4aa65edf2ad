"""What a GPU job sees: its scheduler allocation, the visible devices, nvidia-smi and torch.

The model stages run on GPUs; when one of them cannot find its GPU, the first question is whether
the scheduler gave the job one and whether CUDA sees it. The device report answers that for every
run, from inside a job that requests a GPU the same way the model stages do.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Any

from senorita.atomic import write_text
from senorita.provenance import code_version, package_versions

# Variables through which SLURM (and CUDA) tell a job which GPUs it holds.
GPU_ENV = [
    "CUDA_VISIBLE_DEVICES",
    "SLURM_JOB_ID",
    "SLURM_JOB_PARTITION",
    "SLURM_GPUS",
    "SLURM_GPUS_ON_NODE",
    "SLURM_JOB_GPUS",
    "SLURM_STEP_GPUS",
    "GPU_DEVICE_ORDINAL",
]


def _nvidia_smi() -> dict[str, Any]:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return {"available": False, "error": "nvidia-smi not found"}
    try:
        out = subprocess.run(
            [exe, "--query-gpu=index,name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    except (OSError, subprocess.SubprocessError) as err:
        return {"available": False, "error": str(err)}
    gpus = []
    for line in out.strip().splitlines():
        index, name, memory, driver = (part.strip() for part in line.split(",", 3))
        gpus.append({"index": index, "name": name, "memory": memory, "driver": driver})
    return {"available": bool(gpus), "gpus": gpus}


def _torch() -> dict[str, Any]:
    try:
        import torch
    except ImportError as err:
        return {"importable": False, "error": str(err)}
    info: dict[str, Any] = {
        "importable": True,
        "version": torch.__version__,
        "built_with_cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "cpu_threads": torch.get_num_threads(),  # its intra-op pool: the job's threads, if set
    }
    if info["cuda_available"]:
        info["devices"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def device_report() -> dict[str, Any]:
    """The devices this process can use, and what the scheduler says it was given."""
    return {
        "host": socket.gethostname(),
        "code_version": code_version(),
        "packages": package_versions(),
        "environment": {name: os.environ.get(name) for name in GPU_ENV},
        "nvidia_smi": _nvidia_smi(),
        "torch": _torch(),
        "blas_threads": _blas_threads(),
    }


def _blas_threads() -> list[dict[str, Any]]:
    """The BLAS libraries loaded (numpy's OpenBLAS, ...) and their thread pools' sizes."""
    from threadpoolctl import threadpool_info

    return [
        {"library": i["internal_api"], "threads": i["num_threads"]}
        for i in threadpool_info()
        if i["user_api"] == "blas"
    ]


def write_device_report(out: Path) -> dict[str, Any]:
    """Write :func:`device_report` as JSON to ``out`` and return it."""
    report = device_report()
    write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", out)
    return report
