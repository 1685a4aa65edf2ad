"""Command line: one subcommand per stage. The Snakemake rules call these; so can you.

Stage parameters arrive as JSON (the rule passes its slice of the validated config), so each
stage runs the same with or without Snakemake.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path


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
    paths = []
    for pattern in patterns:
        for task in tasks if "{task}" in pattern else [None]:
            for shard in range(shards):
                fields = {"shard": f"{shard:05d}", **({"task": task} if task else {})}
                paths.append(Path(pattern.format(**fields)))
    return paths


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="senorita", description=__doc__)
    sub = parser.add_subparsers(dest="stage", required=True)

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

    p = sub.add_parser("pairs", help="make one task's pairs for one shard")
    p.add_argument("--task", required=True)
    p.add_argument("--shard", type=int, required=True)
    p.add_argument("--clips", type=Path, required=True)
    p.add_argument("--videos", type=Path, required=True)
    p.add_argument("--params", type=_json, required=True, help="the config's tasks.<task> section")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--encode", type=_json, required=True, help="the config's encode section")
    p.add_argument("--dataset", type=Path, required=True, help="the dataset root folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rejects", type=Path, required=True)

    p = sub.add_parser("control", help="make one shard's control maps (depth, HED, scribble)")
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
    p.add_argument("--videos", type=Path, required=True)
    p.add_argument("--control", type=Path, required=True, help="the shard's control-map table")
    p.add_argument("--params", type=_json, required=True, help="the config's tasks.<task> section")
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--dataset", type=Path, required=True, help="the dataset root folder")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rejects", type=Path, required=True)

    p = sub.add_parser("tiny-models", help="build tiny random models of every family (CPU demo)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--families", default=None, help="comma-separated; default: all")

    p = sub.add_parser("filter-scores", help="score one task's pairs for the three filters")
    p.add_argument("--task", required=True)
    p.add_argument("--pattern", required=True, help="shard pair table path with a {shard} field")
    p.add_argument("--shards", type=int, required=True)
    p.add_argument("--dataset", type=Path, required=True, help="the dataset root folder")
    p.add_argument("--params", type=_json, required=True, help="the config's filters section")
    p.add_argument("--models", type=_json, required=True, help="the config's models section")
    p.add_argument("--workers", type=int, default=2, help="threads decoding pairs ahead")
    p.add_argument("--out", type=Path, required=True)

    p = sub.add_parser("manifest", help="gather a task's shard tables into its manifest")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--shards", type=int, required=True)
    p.add_argument("--pattern", required=True, help="shard table path with a {shard} field")
    p.add_argument("--scores", type=Path, help="the task's filter scores (see filter-scores)")
    p.add_argument(
        "--thresholds", type=_json, default={}, help="the config's filters.tasks.<task> section"
    )

    p = sub.add_parser("card", help="write the dataset card and the rejects table")
    p.add_argument("--catalogue", type=Path, required=True)
    p.add_argument("--manifests", type=Path, nargs="+", required=True)
    p.add_argument("--shards", type=int, required=True)
    p.add_argument("--tasks", required=True, help="comma-separated task ids")
    p.add_argument(
        "--rejects", nargs="+", required=True, help="rejects table paths with {shard}/{task} fields"
    )
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--rejects-out", type=Path, required=True)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    log = logging.getLogger("senorita")
    try:
        if args.stage == "catalogue":
            from senorita.catalogue import build_catalogue

            build_catalogue(args.source, args.shards, args.out)
        elif args.stage == "ingest":
            from senorita.ingest import ingest_shard

            ingest_shard(
                args.catalogue,
                args.shard,
                args.source,
                args.params,
                args.clips,
                args.out,
                args.rejects,
            )
        elif args.stage == "clips":
            from senorita.clips import clip_shard

            clip_shard(args.videos, args.shard, args.params, args.out, args.rejects, args.media)
        elif args.stage == "pairs":
            from senorita.pairs import make_operator_pairs

            make_operator_pairs(
                args.task,
                args.shard,
                args.clips,
                args.videos,
                args.params,
                args.seed,
                args.encode,
                args.dataset,
                args.out,
                args.rejects,
            )
        elif args.stage == "control":
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
        elif args.stage == "control-pairs":
            from senorita.pairs import make_control_pairs

            make_control_pairs(
                args.task,
                args.shard,
                args.clips,
                args.videos,
                args.control,
                args.params,
                args.seed,
                args.dataset,
                args.out,
                args.rejects,
            )
        elif args.stage == "tiny-models":
            from senorita.models.tiny import FAMILIES, build_tiny_models

            families = tuple(args.families.split(",")) if args.families else FAMILIES
            build_tiny_models(args.out, families)
        elif args.stage == "filter-scores":
            from senorita.filters import score_task

            score_task(
                args.task,
                args.pattern,
                args.shards,
                args.dataset,
                args.params,
                args.models,
                args.out,
                workers=args.workers,
            )
        elif args.stage == "manifest":
            from senorita.manifest import build_manifest

            build_manifest(
                expand_shards([args.pattern], args.shards, []),
                args.out,
                scores=args.scores,
                thresholds=args.thresholds,
            )
        elif args.stage == "card":
            from senorita.card import build_card

            tasks = [t for t in args.tasks.split(",") if t]
            rejects = expand_shards(args.rejects, args.shards, tasks)
            build_card(args.manifests, rejects, args.catalogue, args.out, args.rejects_out)
    except (OSError, ValueError) as err:
        log.error("%s failed: %s", args.stage, err)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
