"""Stage 8: the paper's three filters, in its order: visual quality, text alignment, similarity;
then a vision-language judge (``senorita.judge``), the filter the newer datasets use.

Two steps, so thresholds can change without recomputing anything expensive:

1. **Scoring** (``filters.scoring.score_task``, the ``filter_scores`` job, one per task, GPU):
   every pair gets every score that applies to it, written to
   ``results/filters/<task>/scores.parquet``. Resumable per shard.
2. **Thresholding** (``filters.thresholds.apply_filters``, inside the task's ``manifest`` job,
   cheap): each pair is judged against its task's bounds, filters in order; a pair that fails
   keeps its row with ``kept = false`` and ``filter_reason`` naming the first failing filter, its
   scores and bounds.

The judge scores in its own job (``filters.judging.judge_task``, ``judge_scores``, one per task,
GPU): ``judge_instruction``, ``judge_preservation`` and ``judge_quality`` (1–5), and
``judge_reason``. Its bounds sit with the others in ``filters.tasks.<task>``; with
``filters.judge.gate`` off they are recorded (``judge_pass``) but keep nothing out, to compare
the judge with the CLIP filters first. A pair the judge could not score fails a gating judge
(never a pass).

The pass rates of the report are in ``senorita.summary``, the dataset card's filter section in
``senorita.card``. This module names the filters and scores only, and imports nothing heavy: the
manifest job reads it without OpenCV or torch.

Scores (``SCORES`` maps each to its filter):

- quality of the target, technical checks on every decoded frame (cheap next to decoding):
  ``sharpness`` (variance of the Laplacian of the luma, averaged over frames), ``mean_luma``
  (0..255), ``clipped_fraction`` (pixels crushed to black or blown to white), ``frozen_fraction``
  (consecutive frames that hardly differ) and ``flicker`` (temporal std of the frame-to-frame
  change of mean luma: a steady fade or pan scores 0, an oscillating exposure does not). No
  learned aesthetic score: the usual one (LAION's aesthetic predictor) is a separate MLP head
  downloaded from outside the hub's model families, and it judges photos, not the maps some tasks
  produce (see the README).
- text alignment, with CLIP on ``filters.frames`` frames sampled evenly from each video:
  ``clip_text`` (mean cosine between the target frames and ``target_prompt``) and
  ``clip_directional`` (mean cosine between each frame's image-embedding change, source to
  target, and the text-embedding change, ``source_prompt`` to ``target_prompt``; InstructPix2Pix's
  directional similarity). Null where the pair has no prompts (the operator tasks have none).
- similarity: ``clip_image``, mean cosine between corresponding source and target frames.

A null score is never filtered on; a bound set to null in the config is not applied.
"""

FILTERS = ("quality", "text", "similarity", "judge")
FILTER_NAMES = {
    "quality": "visual quality",
    "text": "text alignment",
    "similarity": "similarity",
    "judge": "VLM judge",
}

# Each score of the scoring job and the filter it belongs to, in the order reasons list them.
CLIP_SCORES: dict[str, str] = {
    "sharpness": "quality",
    "mean_luma": "quality",
    "clipped_fraction": "quality",
    "frozen_fraction": "quality",
    "flicker": "quality",
    "clip_text": "text",
    "clip_directional": "text",
    "clip_image": "similarity",
}
# The judge's scores (``senorita.judge.SCORES``, prefixed), from the judge_scores job.
JUDGE_SCORES: dict[str, str] = {
    "judge_instruction": "judge",
    "judge_preservation": "judge",
    "judge_quality": "judge",
}
SCORES: dict[str, str] = {**CLIP_SCORES, **JUDGE_SCORES}
