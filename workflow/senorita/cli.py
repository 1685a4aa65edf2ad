"""Command line: one subcommand per stage. The Snakemake rules call these; so can you.

Stage parameters arrive as JSON (the rule passes its slice of the validated config), so each
stage runs the same with or without Snakemake.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from senorita import worker  # the standard library only: every command starts through it


def _json(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"not valid JSON: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object")
    return value


def expand_shards(patterns: list[str], shards: int, tasks: list[str]) -> list[Path]:
    """Paths from patterns with ``{shard}`` (and ``{task}``) fields, as the Snakefile names them."""
    from senorita.ids import shard_name

    paths = []
    for pattern in patterns:
        for task in tasks if "{task}" in pattern else [None]:
            for shard in range(shards):
                fields = {"shard": shard_name(shard), **({"task": task} if task else {})}
                paths.append(Path(pattern.format(**fields)))
    return paths


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="senorita", description=__doc__)
    sub = parser.add_subparsers(dest="stage", required=True)

    p = sub.add_parser(
        "warm",
        help="run a command (snakemake ...) beside a worker that imports the model libraries once;"
        " its jobs' senorita commands fork from it instead of starting Python each time",
    )
    p.add_argument("--log", type=Path, help="the worker's log: one line per command it ran")
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- snakemake --cores 2 all")

    p = sub.add_parser("catalogue", help="list the source's videos and assign shards")
    p.add_argument("--source", type=_json, required=True, help="the config's source section")
    p.add_argument("--shards", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("ingest", help="probe one shard's videos; accept or reject each")
    p.add_argument("--catalogue", type=Path, required=True)
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--source", type=_json, required=True)
    p.add_argument("--params", type=_json, required=True, help="the config's ingest section")
    p.add_argument("--clips", type=_json, required=True, help="the config's clips section")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rejects", type=Path, required=True)

    p = sub.add_parser("clips", help="cut one shard's clips")
    p.add_argument("--videos", type=Path, required=True)
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--params", type=_json, required=True, help="the config's clips section")
    p.add_argument("--media", type=Path, required=True, help="folder for the clip files")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rejects", type=Path, required=True)
    p.add_argument("--duplicates", type=Path, help="the dedup table (near duplicates get no clip)")

    p = sub.add_parser("dedup", help="find near-duplicate videos over every shard (CLIP)")
    p.add_argument("--videos", required=True, help="ingest table path with a {shard} field")
    p.add_argument("--shards", type=int, required=True)
    p.add_argument("--params", type=_json, required=True, help="frames and threshold (dedup)")
    p.add_argument("--models", type=_json, required=True, help="the config's models section")
    p.add_argument("--workers", type=int, default=4, help="threads decoding frames ahead")
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("operator-pairs", help="make one operator task's pairs for one shard")
    p.add_argument("--task", required=True)
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--clips", type=Path, required=True)
    p.add_argument("--params", type=_json, required=True, help="the config's tasks.<task> section")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--encode", type=_json, required=True, help="the config's encode section")
    p.add_argument("--dataset", type=Path, required=True, help="the dataset root folder")
    p.add_argument("--max-words", type=int, default=None, help="longest instruction allowed")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rejects", type=Path, required=True)

    p = sub.add_parser("captions", help="caption one shard's clips (BLIP-2)")
    p.add_argument("--clips", type=Path, required=True)
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--params", type=_json, required=True, help="the config's captions section")
    p.add_argument("--models", type=_json, required=True, help="the config's models section")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rejects", type=Path, required=True)

    p = sub.add_parser("control-maps", help="make one shard's control maps (depth, HED, scribble)")
    p.add_argument("--clips", type=Path, required=True)
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--kinds", required=True, help="comma-separated: depth,hed,scribble,canny")
    p.add_argument("--params", type=_json, required=True, help="the config's control section")
    p.add_argument("--models", type=_json, required=True, help="the config's models section")
    p.add_argument("--encode", type=_json, required=True, help="the config's encode section")
    p.add_argument("--media", type=Path, required=True, help="folder for the map videos")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rejects", type=Path, required=True)

    p = sub.add_parser("control-pairs", help="make one detector task's pairs for one shard")
    p.add_argument("--task", required=True)
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--clips", type=Path, required=True)
    p.add_argument("--control", type=Path, required=True, help="the shard's control-map table")
    p.add_argument("--params", type=_json, required=True, help="the config's tasks.<task> section")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--dataset", type=Path, required=True, help="the dataset root folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rejects", type=Path, required=True)

    p = sub.add_parser("masks", help="object phrases, boxes and video masks of one shard's clips")
    p.add_argument("--clips", type=Path, required=True)
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--params", type=_json, required=True, help="the config's masks section")
    p.add_argument("--models", type=_json, required=True, help="the config's models section")
    p.add_argument("--media", type=Path, required=True, help="folder for the mask files")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rejects", type=Path, required=True)

    p = sub.add_parser("grounding-pairs", help="make one shard's grounding pairs from its masks")
    p.add_argument("--task", default="grounding")
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--clips", type=Path, required=True)
    p.add_argument("--masks", type=Path, required=True, help="the shard's mask table")
    p.add_argument("--params", type=_json, required=True, help="the config's tasks.<task> section")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--encode", type=_json, required=True, help="the config's encode section")
    p.add_argument("--dataset", type=Path, required=True, help="the dataset root folder")
    p.add_argument("--max-words", type=int, default=None)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rejects", type=Path, required=True)

    p = sub.add_parser("expert-checkpoint", help="check an expert's checkpoint before its jobs run")
    p.add_argument("--name", required=True)
    p.add_argument("--params", type=_json, required=True, help="the config's experts.<name>")
    p.add_argument("--tasks", required=True, help="comma-separated tasks the expert makes")
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser(
        "llm-answers", help="ask the language model one expert task's questions for one shard"
    )
    p.add_argument("--task", required=True)
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--clips", type=Path, required=True)
    p.add_argument("--masks", type=Path, default=None, help="the shard's mask table")
    p.add_argument("--captions", type=Path, default=None, help="the shard's caption table")
    p.add_argument("--params", type=_json, required=True, help="the config's tasks.<task> section")
    p.add_argument("--experts", type=_json, required=True, help="the config's experts section")
    p.add_argument("--models", type=_json, required=True, help="the config's models section")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--max-words", type=int, default=None)
    p.add_argument("--out", type=Path, required=True, help="the answer cache (JSON lines)")

    p = sub.add_parser("expert-pairs", help="make one expert task's pairs for one shard")
    p.add_argument("--task", required=True)
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--clips", type=Path, required=True)
    p.add_argument("--masks", type=Path, default=None, help="the shard's mask table")
    p.add_argument("--control", type=Path, default=None, help="the shard's control-map table")
    p.add_argument("--captions", type=Path, default=None, help="the shard's caption table")
    p.add_argument(
        "--videos", type=Path, default=None, help="the shard's ingest table (super-resolution)"
    )
    p.add_argument("--params", type=_json, required=True, help="the config's tasks.<task> section")
    p.add_argument("--experts", type=_json, required=True, help="the config's experts section")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--encode", type=_json, required=True, help="the config's encode section")
    p.add_argument("--dataset", type=Path, required=True, help="the dataset root folder")
    p.add_argument(
        "--cache", type=Path, default=None, help="the language model's answers (llm-answers)"
    )
    p.add_argument("--max-words", type=int, default=None)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rejects", type=Path, required=True)

    p = sub.add_parser("reversed-pairs", help="make a task's pairs by reversing another's")
    p.add_argument("--task", required=True)
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--clips", type=Path, required=True)
    p.add_argument("--forward", type=Path, required=True, help="the reversed task's pair table")
    p.add_argument("--params", type=_json, required=True, help="the config's tasks.<task> section")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--dataset", type=Path, required=True, help="the dataset root folder")
    p.add_argument("--max-words", type=int, default=None)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rejects", type=Path, required=True)

    p = sub.add_parser("train-expert", help="train one expert on the annotated shards (accelerate)")
    p.add_argument("--expert", required=True)
    p.add_argument("--params", type=_json, required=True, help="the config's experts.<name>.train")
    p.add_argument("--results", type=Path, required=True, help="the results folder (the shards)")
    p.add_argument("--shards", type=int, required=True)
    p.add_argument("--work", type=Path, required=True, help="folder for checkpoints and losses")
    p.add_argument("--out", type=Path, required=True, help="the final diffusers checkpoint")

    p = sub.add_parser("tiny-models", help="build tiny random models of every family (CPU demo)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--families", default=None, help="comma-separated; default: all")

    # The two per-task scoring jobs take the same arguments.
    for name, what, params in (
        ("filter-scores", "score one task's pairs for the three filters", "filters section"),
        ("judge-scores", "the VLM judge's verdict on each of a task's pairs", "filters.judge"),
    ):
        p = sub.add_parser(name, help=what)
        p.add_argument("--task", required=True)
        p.add_argument("--pattern", required=True, help="pair table path with a {shard} field")
        p.add_argument("--shards", type=int, required=True)
        p.add_argument("--dataset", type=Path, required=True, help="the dataset root folder")
        p.add_argument("--params", type=_json, required=True, help=f"the config's {params}")
        p.add_argument("--models", type=_json, required=True, help="the config's models section")
        p.add_argument("--workers", type=int, default=2, help="threads decoding pairs ahead")
        p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser(
        "manifest",
        help="gather a task's shard tables into its manifest; optionally draw its report "
        "pictures and export its WebDataset shards from it (the task's one job after scoring)",
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--shards", type=int, required=True)
    p.add_argument("--pattern", required=True, help="shard table path with a {shard} field")
    p.add_argument("--scores", type=Path, help="the task's filter scores (see filter-scores)")
    p.add_argument("--verdicts", type=Path, help="the task's judge scores (see judge-scores)")
    p.add_argument(
        "--thresholds", type=_json, default={}, help="the config's filters.tasks.<task> section"
    )
    p.add_argument(
        "--no-judge-gate",
        dest="gate_judge",
        action="store_false",
        help="record the judge's pass/fail but keep pairs by the CLIP filters only",
    )
    p.add_argument("--task", help="the task id (names the tar shards; default: --out's folder)")
    p.add_argument("--dataset", type=Path, help="the dataset root (for --sheet and --webdataset)")
    p.add_argument("--sheet", type=Path, help="also draw the contact sheet (PNG, with --gif)")
    p.add_argument("--gif", type=Path, help="also draw the animated preview (GIF, with --sheet)")
    p.add_argument("--pairs", type=int, default=3, help="sample pairs on the contact sheet")
    p.add_argument(
        "--judge-sheet", type=Path, help="also a sheet of the kept pairs the judge scored lowest"
    )
    p.add_argument(
        "--sr-sheet", type=Path, help="also crops of working-size vs lifted targets (PNG)"
    )
    p.add_argument("--webdataset", type=Path, help="also export WebDataset tar shards here")

    p = sub.add_parser("dataset-card", help="write the dataset card and the rejects table")
    p.add_argument("--catalogue", type=Path, required=True)
    p.add_argument("--manifests", type=Path, nargs="+", required=True)
    p.add_argument("--shards", type=int, required=True)
    p.add_argument("--tasks", required=True, help="comma-separated task ids")
    p.add_argument(
        "--rejects", nargs="+", required=True, help="rejects table paths with {shard}/{task} fields"
    )
    p.add_argument("--videos", help="ingest table path with a {shard} field (for the clip yield)")
    p.add_argument("--clips", help="clip table path with a {shard} field (for the clip yield)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rejects-out", type=Path, required=True)
    p.add_argument("--pairs-html", type=Path, help="also the report's pairs-per-task table")
    p.add_argument("--filters-html", type=Path, help="also the report's filter pass rates")
    p.add_argument("--rejects-html", type=Path, help="also the report's rejects by reason")
    p.add_argument("--judge-html", type=Path, help="also the report's judge page (with the above)")

    p = sub.add_parser("preview", help="contact sheet and animated preview of a task's pairs")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--dataset", type=Path, required=True)
    p.add_argument("--pairs", type=int, default=3, help="sample pairs on the contact sheet")
    p.add_argument("--sheet", type=Path, required=True)
    p.add_argument("--gif", type=Path, required=True)

    p = sub.add_parser("summary", help="report tables: pairs per task, rejects by reason")
    p.add_argument("--manifests", type=Path, nargs="+", required=True)
    p.add_argument("--rejects", type=Path, required=True)
    p.add_argument("--pairs-out", type=Path, required=True)
    p.add_argument("--filters-out", type=Path, required=True)
    p.add_argument("--rejects-out", type=Path, required=True)

    p = sub.add_parser("webdataset", help="export a task's pairs as WebDataset tar shards")
    p.add_argument("--manifest", type=Path, required=True)
    p.add_argument("--dataset", type=Path, required=True)
    p.add_argument("--task", help="the task id (names the tars; default: the manifest's folder)")
    p.add_argument("--out", type=Path, required=True, help="folder for the tar shards")

    p = sub.add_parser("versions", help="the run's versions file: code, packages, config")
    p.add_argument("--config", type=_json, required=True)
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("device-report", help="record the GPUs this job was given and can use")
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("plan", help="GPU memory of every GPU job: weights, activations, peak")
    p.add_argument(
        "--config",
        type=Path,
        nargs="*",
        default=[],
        help="config files merged in order (none: the schema's defaults, i.e. the real models)",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    return parser


# One handler per subcommand. Imports stay inside so that `senorita <stage>` loads only what that
# stage needs (torch for a model stage, not for the card).


def _catalogue(args: argparse.Namespace) -> None:
    from senorita.catalogue import build_catalogue

    build_catalogue(args.source, args.shards, args.out)


def _ingest(args: argparse.Namespace) -> None:
    from senorita.ingest import ingest_shard

    ingest_shard(
        args.catalogue, args.shard, args.source, args.params, args.clips, args.out, args.rejects
    )


def _clips(args: argparse.Namespace) -> None:
    from senorita.clips import clip_shard

    clip_shard(
        args.videos,
        args.shard,
        args.params,
        args.out,
        args.rejects,
        args.media,
        duplicates=args.duplicates,
    )


def _dedup(args: argparse.Namespace) -> None:
    from senorita.dedup import dedup_videos

    dedup_videos(args.videos, args.shards, args.models, args.params, args.out, workers=args.workers)


def _pairs(stage: str):
    """The handler of a pair stage's subcommand (``<stage>-pairs``): one PairJob, made by the
    task's stage (senorita.pairs)."""

    def handler(args: argparse.Namespace) -> None:
        from senorita.pairs import PairJob, make_task_pairs

        make_task_pairs(PairJob.from_args(args), stage=stage)

    return handler


def _manifest(args: argparse.Namespace) -> None:
    from senorita.manifest import build_manifest

    if (args.sheet is None) != (args.gif is None):
        raise ValueError("manifest: --sheet and --gif go together")
    if (args.judge_sheet or args.sr_sheet) and not args.sheet:
        raise ValueError("manifest: --judge-sheet and --sr-sheet need --sheet and --gif")
    if (args.sheet or args.webdataset) and args.dataset is None:
        raise ValueError("manifest: --sheet and --webdataset need --dataset")
    build_manifest(
        expand_shards([args.pattern], args.shards, []),
        args.out,
        scores=args.scores,
        thresholds=args.thresholds,
        verdicts=args.verdicts,
        gate_judge=args.gate_judge,
    )
    # The pictures and the tars read the manifest as written, as their own subcommands do.
    if args.sheet:
        import pandas as pd

        from senorita.preview import write_previews

        manifest = pd.read_parquet(args.out)
        write_previews(
            manifest,
            args.dataset,
            args.sheet,
            args.gif,
            args.pairs,
            judge_sheet=args.judge_sheet,
            sr_sheet=args.sr_sheet,
        )
    if args.webdataset:
        from senorita.export import export_task

        export_task(args.out, args.dataset, args.webdataset, task=args.task)


def _dataset_card(args: argparse.Namespace) -> None:
    from senorita.card import build_card

    tasks = [t for t in args.tasks.split(",") if t]
    rejects = expand_shards(args.rejects, args.shards, tasks)
    videos, clips = (
        (expand_shards([p], args.shards, []) if p else None) for p in (args.videos, args.clips)
    )
    build_card(args.manifests, rejects, args.catalogue, args.out, args.rejects_out, videos, clips)
    html = (args.pairs_html, args.filters_html, args.rejects_html)
    if any(html):
        if not all(html):
            raise ValueError("card: --pairs-html, --filters-html and --rejects-html go together")
        from senorita.summary import write_summary

        write_summary(args.manifests, args.rejects_out, *html, judge_out=args.judge_html)


def _preview(args: argparse.Namespace) -> None:
    import pandas as pd

    from senorita.preview import write_previews

    write_previews(pd.read_parquet(args.manifest), args.dataset, args.sheet, args.gif, args.pairs)


def _summary(args: argparse.Namespace) -> None:
    from senorita.summary import write_summary

    write_summary(args.manifests, args.rejects, args.pairs_out, args.filters_out, args.rejects_out)


def _webdataset(args: argparse.Namespace) -> None:
    from senorita.export import export_task

    export_task(args.manifest, args.dataset, args.out, task=args.task)


def _versions(args: argparse.Namespace) -> None:
    from senorita.atomic import write_text
    from senorita.provenance import versions_record

    record = versions_record(args.config)
    write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", args.out)


def _device_report(args: argparse.Namespace) -> None:
    from senorita.devices import write_device_report

    report = write_device_report(args.out)
    logging.getLogger("senorita").info(
        "device report: nvidia-smi %s, torch CUDA %s, CUDA_VISIBLE_DEVICES=%s",
        report["nvidia_smi"]["available"],
        report["torch"].get("cuda_available"),
        report["environment"]["CUDA_VISIBLE_DEVICES"],
    )


def _captions(args: argparse.Namespace) -> None:
    from senorita.captions import caption_shard

    caption_shard(args.clips, args.shard, args.params, args.models, args.out, args.rejects)


def _control_maps(args: argparse.Namespace) -> None:
    from senorita.control import control_shard

    control_shard(
        args.clips,
        args.shard,
        [k for k in args.kinds.split(",") if k],
        args.params,
        args.models,
        args.encode,
        args.media,
        args.out,
        args.rejects,
    )


def _masks(args: argparse.Namespace) -> None:
    from senorita.masks import mask_shard

    mask_shard(args.clips, args.shard, args.params, args.models, args.media, args.out, args.rejects)


def _expert_checkpoint(args: argparse.Namespace) -> None:
    from senorita.checkpoints import check_expert

    check_expert(args.name, args.params, [t for t in args.tasks.split(",") if t], args.out)


def _llm_answers(args: argparse.Namespace) -> None:
    from senorita.llm_answers import llm_answers
    from senorita.pairs import PairJob

    llm_answers(PairJob.from_args(args))


def _train_expert(args: argparse.Namespace) -> None:
    from senorita.training.loop import train_expert
    from senorita.training.views import patterns_for

    patterns = patterns_for(args.expert, args.results)
    train_expert(args.expert, args.params, patterns, args.shards, args.out, args.work)


def _tiny_models(args: argparse.Namespace) -> None:
    from senorita.testing.tiny import ALL, build_tiny_models

    families = tuple(args.families.split(",")) if args.families else ALL
    build_tiny_models(args.out, families)


def _task_scores(module: str, function: str):
    """The handler of a per-task scoring subcommand: ``module.function`` over the task's shards."""

    def handler(args: argparse.Namespace) -> None:
        import importlib

        score = getattr(importlib.import_module(module), function)
        score(
            args.task,
            args.pattern,
            args.shards,
            args.dataset,
            args.params,
            args.models,
            args.out,
            workers=args.workers,
        )

    return handler


def _plan(args: argparse.Namespace) -> None:
    import yaml

    from senorita.memory import SCHEMA, plan, table, with_defaults

    config: dict = {}
    for path in args.config:
        config = _merge(config, yaml.safe_load(path.read_text(encoding="utf-8")) or {})
    jobs = plan(with_defaults(config, SCHEMA))
    print(json.dumps([j.row() for j in jobs], indent=1) if args.json else table(jobs))


def _warm(args: argparse.Namespace) -> int:
    return worker.warm(args.command[1:] if args.command[:1] == ["--"] else args.command, args.log)


def _merge(base: dict, update: dict) -> dict:
    """``update`` over ``base``, nested dicts merged (as Snakemake merges config files)."""
    out = dict(base)
    for k, v in update.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


HANDLERS = {
    "catalogue": _catalogue,
    "ingest": _ingest,
    "clips": _clips,
    "dedup": _dedup,
    "operator-pairs": _pairs("operator"),
    "manifest": _manifest,
    "dataset-card": _dataset_card,
    "preview": _preview,
    "summary": _summary,
    "webdataset": _webdataset,
    "versions": _versions,
    "device-report": _device_report,
    "captions": _captions,
    "control-maps": _control_maps,
    "control-pairs": _pairs("control"),
    "masks": _masks,
    "grounding-pairs": _pairs("grounding"),
    "expert-checkpoint": _expert_checkpoint,
    "llm-answers": _llm_answers,
    "expert-pairs": _pairs("expert"),
    "reversed-pairs": _pairs("reversed"),
    "train-expert": _train_expert,
    "tiny-models": _tiny_models,
    "filter-scores": _task_scores("senorita.filters.scoring", "score_task"),
    "judge-scores": _task_scores("senorita.filters.judging", "judge_task"),
    "plan": _plan,
    "warm": _warm,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    address = os.environ.get(worker.ENV_VAR)
    if address and argv[:1] != ["warm"]:  # a job of `senorita warm -- ...`: run in its worker
        status = worker.submit(argv, address)
        if status is not None:
            return status
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return HANDLERS[args.stage](args) or 0  # a handler returns None, or an exit status
    except (OSError, ValueError) as err:  # bad input: one clear line; anything else: a traceback
        logging.getLogger("senorita").error("%s failed: %s", args.stage, err)
        return 1


if __name__ == "__main__":
    sys.exit(main())
