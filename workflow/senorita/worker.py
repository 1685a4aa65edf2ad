"""A warm worker for runs on one machine: import torch, transformers and diffusers once, fork each
``senorita`` command from that process.

A local run of the workflow is about a hundred short jobs, and each job used to spend most of its
time starting Python and importing the model libraries (10-15 s on 2 cores). ``senorita warm --
snakemake --cores 2 all`` starts one server that imports them, runs the command with
``SENORITA_WORKER`` pointing at the server's socket, and stops the server when it ends. Every
``senorita`` command the jobs run then sends its arguments, folder, environment and standard
streams to the server, which forks a process already holding the imports to run it. Snakemake's
DAG, its jobs, their logs and a one-task rebuild stay exactly as they are; only the start-up goes.

Nothing changes in what a command computes: the forked process runs the same ``cli.main`` on the
same arguments, in the job's folder, with the job's environment and streams. The server refuses a
command (which then runs in its own process, as without the worker) when the job's environment
differs from the server's in a variable read at import time (Hugging Face, torch and thread
settings, plugins, ``PYTHONPATH``), since its imports were made under the server's. On a cluster
each job runs on its own node, so there is no worker: without the variable, or without a server
answering, a command runs in its own process.

A killed job kills its command: each command's process is watched by a small supervisor that
kills it when the job's process goes away (Snakemake cancelling a job, a SIGKILL), and reports its
exit status (or 128 + the signal that ended it) back to the job.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import logging
import os
import pkgutil
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ENV_VAR = "SENORITA_WORKER"

# What the jobs import: every module of this package (the stage modules import torch, cv2,
# pandas, ... at the top), sam2's builder, and the model classes the stages import inside
# functions (transformers and diffusers load them lazily, and that lazy import is most of a model
# stage's start-up). inflect (phrases.singular, imported when first asked) spends 4 s at import
# instrumenting its methods with typeguard (jaraco/inflect#212): once here, not in every masks and
# language-model job.
PRELOAD_MODULES = ("torch", "sam2.build_sam", "inflect")
PRELOAD_ATTRIBUTES = {
    "transformers": (
        "AutoConfig",
        "AutoImageProcessor",
        "AutoModelForCausalLM",
        "AutoModelForDepthEstimation",
        "AutoModelForImageTextToText",
        "AutoModelForZeroShotObjectDetection",
        "AutoProcessor",
        "AutoTokenizer",
        "Blip2ForConditionalGeneration",
        "CLIPModel",
        "CLIPProcessor",
        "CLIPTextModel",
        "CLIPTokenizer",
        "T5EncoderModel",
        "Qwen2_5_VLForConditionalGeneration",
    ),
    "diffusers": (
        "AutoencoderKLCogVideoX",
        "CogVideoXDPMScheduler",
        "CogVideoXTransformer3DModel",
        "ControlNetModel",
        "DiffusionPipeline",
        "FluxFillPipeline",
        "StableDiffusionControlNetPipeline",
    ),
}

# Environment variables read when those modules are imported (or their thread pools start): a
# job whose values differ runs in its own process rather than in imports made under other values.
IMPORT_TIME_ENV = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "DIFFUSERS_", "TORCH", "PYTORCH_",
                   "OMP_", "MKL_", "OPENBLAS_", "CUDA_", "PYTHON", "SENORITA_PLUGINS")  # fmt: skip
# Except the thread counts Snakemake gives every job (its `threads`): the forked command sets its
# pools to them, as its own process would have from the variables.
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

REFUSED = -(2**31)  # the reply for a refused command: run it in your own process
_HEADER = struct.Struct("!I")
_STATUS = struct.Struct("!i")

log = logging.getLogger("senorita.worker")


def import_time_env(env: dict[str, str]) -> dict[str, str]:
    """The variables of ``env`` that the server's imports depend on."""
    return {k: v for k, v in env.items() if k.startswith(IMPORT_TIME_ENV) and k != ENV_VAR}


def differences(own: dict[str, str], job: dict[str, str]) -> list[str]:
    """The import-time variables in which a job's environment differs from the worker's: any
    but a thread count the job sets (the command applies it, see ``set_threads``)."""
    job = import_time_env(job)
    return sorted(
        k
        for k in set(own) | set(job)
        if own.get(k) != job.get(k) and not (k in THREAD_ENV and _count(job.get(k)))
    )


def set_threads(env: dict[str, str]) -> None:
    """Size torch's and the BLAS thread pools from ``env``, as a process started with it would."""
    import torch
    from threadpoolctl import threadpool_limits

    if n := _count(env.get("OMP_NUM_THREADS")):  # torch's intra-op default, via OpenMP
        torch.set_num_threads(n)
    if n := _count(env.get("OPENBLAS_NUM_THREADS")) or _count(env.get("OMP_NUM_THREADS")):
        threadpool_limits(limits=n, user_api="blas")


def _count(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and int(value) > 0 else None


def preload() -> list[str]:
    """Import what the jobs import; returns what could not be imported (they import it then)."""
    import senorita

    own = [
        m.name
        for m in pkgutil.walk_packages(senorita.__path__, "senorita.")
        if m.name.rsplit(".", 1)[-1] not in ("__main__", "worker")
    ]
    missing = []
    for name in (*PRELOAD_MODULES, *own):
        try:
            importlib.import_module(name)
        except ImportError as err:
            missing.append(f"{name} ({err})")
    for module, names in PRELOAD_ATTRIBUTES.items():
        lib = importlib.import_module(module)
        for name in names:
            try:
                getattr(lib, name)
            except (AttributeError, ImportError) as err:
                missing.append(f"{module}.{name} ({err})")
    # Caches a job would fill at its start, filled once here for every forked job:
    # - the ffmpeg version every table's provenance records (0.2 s: starting ffmpeg; cached per
    #   binary, so a job whose PATH finds another ffmpeg still asks that one);
    # - transformers' table of checkpoint conversions, about a thousand regular expressions it
    #   compiles on the first from_pretrained in a process (0.4 s in each model job).
    from senorita.provenance import ffmpeg_version

    ffmpeg_version()
    try:
        from transformers.conversion_mapping import get_checkpoint_conversion_mapping

        get_checkpoint_conversion_mapping("clip")
    except (ImportError, AttributeError) as err:  # a transformers without it: the jobs build it
        missing.append(f"transformers.conversion_mapping ({err})")
    return missing


# --- the job's side ------------------------------------------------------------------------------


def submit(argv: list[str], address: str) -> int | None:
    """Run ``senorita argv`` in the worker at ``address``: its exit status, or None when no worker
    answers or it refuses (the caller then runs the command itself)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(address)
    except OSError:
        sock.close()
        return None
    with sock:
        request = json.dumps({"argv": argv, "cwd": os.getcwd(), "env": dict(os.environ)}).encode()
        streams = [_open_fd(fd) for fd in (0, 1, 2)]
        try:
            socket.send_fds(sock, [_HEADER.pack(len(request))], streams)
            sock.sendall(request)
        except OSError:
            return None
        reply = _recv_exact(sock, _STATUS.size)
    if reply is None:
        print("senorita: the warm worker went away during the command", file=sys.stderr)
        return 1
    (status,) = _STATUS.unpack(reply)
    return None if status == REFUSED else status


def _open_fd(fd: int) -> int:
    try:
        os.fstat(fd)
        return fd
    except OSError:  # a closed standard stream: the command gets /dev/null, as a shell would
        return os.open(os.devnull, os.O_RDWR)


def _recv_exact(sock: socket.socket, size: int) -> bytes | None:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


# --- the server's side ---------------------------------------------------------------------------


def serve(address: str, parent: int | None = None) -> None:
    """Bind ``address``, import, then fork a supervised process per command until ``parent``
    (the ``warm`` process) is gone or SIGTERM arrives."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(address)
    listener.listen(128)  # jobs that connect during the imports wait in the queue
    started = time.monotonic()
    before = dict(os.environ)
    missing = preload()
    # Some imports set variables (torch's inductor cache folder): a command gets them as it would
    # from the same imports in its own process.
    set_by_imports = {k: v for k, v in os.environ.items() if before.get(k) != v}
    log.log(
        logging.WARNING if missing else logging.INFO,
        "imports ready in %.1f s%s",
        time.monotonic() - started,
        f"; not preloaded: {', '.join(missing)}" if missing else "",
    )
    # The imports' objects: a forked command's collections then leave their pages shared.
    gc.freeze()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    own_env = import_time_env(before)
    listener.settimeout(1.0)
    while parent is None or os.getppid() == parent:
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        if os.fork() == 0:
            listener.close()
            _supervise(conn, own_env, set_by_imports)  # never returns
        conn.close()


def _supervise(
    conn: socket.socket, own_env: dict[str, str], set_by_imports: dict[str, str]
) -> None:
    """In the forked process: read the command, fork it, watch it and the job, report."""
    try:
        conn.settimeout(None)
        header, fds, _, _ = socket.recv_fds(conn, _HEADER.size, 3)
        (size,) = _HEADER.unpack(header)
        request = json.loads(_recv_exact(conn, size) or b"{}")
        differs = differences(own_env, request["env"])
        if differs or len(fds) != 3:
            why = f"environment differs: {', '.join(differs)}" if differs else "no standard streams"
            log.warning("refused, runs in its own process (%s): %s", why, request["argv"][:1])
            conn.sendall(_STATUS.pack(REFUSED))
            os._exit(0)
        pid = os.fork()
        if pid == 0:
            conn.close()
            _run({**request, "env": {**request["env"], **set_by_imports}}, fds)  # never returns
        for fd in fds:
            os.close(fd)
        started = time.monotonic()
        status, gone, cpu = _watch(conn, pid)
        log.info(
            "%s %s: pid %d, exit %d, %.1f s, %.1f CPU s",
            "killed (its job went away)" if gone else "ran",
            request["argv"][:1],
            pid,
            status,
            time.monotonic() - started,
            cpu,
        )
        if not gone:
            conn.sendall(_STATUS.pack(status))
    except BaseException:  # the job is told it failed; the server goes on
        traceback.print_exc()
    finally:
        os._exit(0)


def _watch(conn: socket.socket, pid: int) -> tuple[int, bool, float]:
    """Wait for the command; kill it if the job's end of the connection closes first. Its exit
    status, whether the job went away, and the CPU seconds it used (with the children it waited
    for: ffmpeg's decoding and encoding count)."""
    pidfd = os.pidfd_open(pid)
    while True:
        ready, _, _ = select.select([pidfd, conn], [], [])
        gone = conn in ready and not conn.recv(1, socket.MSG_PEEK)  # the job's end closed
        if gone:
            os.kill(pid, signal.SIGKILL)
        if gone or pidfd in ready:
            _, wait_status, usage = os.wait4(pid, 0)
            cpu = usage.ru_utime + usage.ru_stime
            if gone:
                return 128 + signal.SIGKILL, True, cpu
            code = os.waitstatus_to_exitcode(wait_status)
            return (128 - code if code < 0 else code), False, cpu  # by a signal: 128 + its number


def _run(request: dict, fds: list[int]) -> None:
    """In the command's process: take the job's streams, folder and environment, run the CLI."""
    code = 1
    try:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        for sig in (signal.SIGTERM, signal.SIGCHLD):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.setpgid(0, 0)  # its own group: the job's group signals reach the job, which ends us
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.pop(ENV_VAR, None)
        logging.root.handlers.clear()  # the command sets up its own logging, as in its own process
        set_threads(os.environ)
        sys.argv = ["senorita", *request["argv"]]
        from senorita import cli

        code = cli.main(request["argv"])
    except SystemExit as exit_:  # argparse's usage errors and sys.exit in a stage
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def warm(command: list[str], log_file: Path | None = None) -> int:
    """Run ``command`` with a warm worker beside it: the exit status of the command. The worker
    logs each command it runs (name, pid, exit status, seconds, and CPU seconds with its
    children's) to ``log_file``; without one, only its warnings, to standard error."""
    if not command:
        raise ValueError("warm: no command given (senorita warm -- snakemake --cores 2 all)")
    folder = tempfile.mkdtemp(prefix="senorita-worker-")
    address = str(Path(folder) / "socket")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "senorita.worker",
            address,
            str(os.getpid()),
            *([str(log_file)] if log_file else []),
        ],
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches the command's jobs, not the server mid-fork
    )
    try:
        for _ in range(600):  # the socket is bound before the imports: this is quick
            if Path(address).exists() or server.poll() is not None:
                break
            time.sleep(0.05)
        env = dict(os.environ)
        if server.poll() is None:
            env[ENV_VAR] = address
        else:
            log.warning("the warm worker did not start; the command runs without it")
        return _run_command(command, env)
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(timeout=10)
        if server.poll() is None:
            server.kill()
        Path(address).unlink(missing_ok=True)
        os.rmdir(folder)


def _run_command(command: list[str], env: dict[str, str]) -> int:
    """Run ``command`` to its end. Ctrl-C reaches it from the terminal (it is in our process
    group) and SIGTERM is passed on, so Snakemake stops its jobs cleanly rather than being killed
    under them; warm then stops its worker."""
    proc = subprocess.Popen(command, env=env)
    forward = {signal.SIGINT: lambda *_: None, signal.SIGTERM: lambda s, _: proc.send_signal(s)}
    previous = {sig: signal.signal(sig, handler) for sig, handler in forward.items()}
    try:
        return proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":  # python -m senorita.worker ADDRESS PARENT_PID [LOG] (warm starts it)
    logging.basicConfig(
        level=logging.INFO if len(sys.argv) > 3 else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        **({"filename": sys.argv[3]} if len(sys.argv) > 3 else {}),
    )
    serve(sys.argv[1], int(sys.argv[2]))
