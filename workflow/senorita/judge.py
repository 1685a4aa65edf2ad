"""The vision-language judge's rubric and the strict reading of its answers (issue #18).

A chat VLM sees frames sampled from a pair's source and target and its instruction, and answers
as JSON: ``instruction`` (followed, 1–5), ``preservation`` (unedited content kept, 1–5),
``quality`` (quality and temporal stability, 1–5) and a one-line ``reason``. Detection tasks
(the target is a map of the source: depth, HED, scribble, an object mask) are judged on the map,
not as an edit. ``parse_verdict`` reads an answer strictly: the JSON object may sit in prose or a
markdown fence, but every score must be there and in range; anything else is a ``VerdictError``
whose message says what was wrong, so the caller can ask once more and then record the pair as
unscored (never a pass, never a crash).

``Judge`` asks a transformers image-text-to-text chat model (Qwen2.5-VL by default; through
``models.vlm.load_processor``, so without torchvision) and reads its answers, asking once more
after an unreadable one.

Not wired into the workflow yet: the judge stage (sampling frames per pair, the per-pair cache,
resumable shards, the thresholds in the manifest, the report) is the rest of issue #18.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from senorita.tasks import Task

SCORES = ("instruction", "preservation", "quality")
LOW, HIGH = 1, 5
MAX_REASON = 200  # characters kept of the reason

_ANSWER_FORMAT = (
    'Answer with one JSON object and nothing else: {"instruction": <1-5>, '
    '"preservation": <1-5>, "quality": <1-5>, "reason": "<one short sentence>"}.'
)
EDIT_RUBRIC = (
    "You judge a video edit. The first image of each pair is a frame of the source video, the "
    "second the same frame of the edited video. The edit instruction was: {instruction!r}.\n"
    "Score from 1 (worst) to 5 (best):\n"
    "- instruction: the edited video does what the instruction asks, fully and only that;\n"
    "- preservation: everything the instruction does not mention is unchanged;\n"
    "- quality: the edited frames look natural, sharp and consistent from frame to frame.\n"
)
MAP_RUBRIC = (
    "You judge a video-to-map conversion. The first image of each pair is a frame of the source "
    "video, the second the same frame of its {target}. The instruction was: {instruction!r}.\n"
    "Score from 1 (worst) to 5 (best):\n"
    "- instruction: the second image is a {target} of the first, as asked;\n"
    "- preservation: the map follows the source's shapes and layout exactly;\n"
    "- quality: the map is clean and consistent from frame to frame.\n"
)


class VerdictError(ValueError):
    """An answer that is not a valid verdict; the message says why."""


@dataclass(frozen=True)
class Verdict:
    instruction: int
    preservation: int
    quality: int
    reason: str

    def scores(self) -> dict[str, int]:
        return {k: getattr(self, k) for k in SCORES}


def judges_a_map(task: Task) -> bool:
    """Whether the task's target is a map of its source (detection, grounding)."""
    return task.filter_kind == "detection" or task.stage == "grounding"


def rubric(task: Task, instruction: str) -> str:
    """The question the judge answers for one pair of ``task``."""
    template = MAP_RUBRIC if judges_a_map(task) else EDIT_RUBRIC
    return template.format(instruction=instruction, target=task.target) + _ANSWER_FORMAT


def retry_prompt(question: str, error: str) -> str:
    """The question again after an answer that could not be read (once)."""
    return f"{question}\nYour previous answer could not be read ({error}). {_ANSWER_FORMAT}"


def _objects(text: str) -> list[str]:
    """The balanced ``{...}`` spans of ``text``, outermost, in order (strings respected)."""
    spans, depth, start, quoted, escaped = [], 0, 0, False, False
    for i, ch in enumerate(text):
        if quoted:  # inside a JSON string: braces do not count
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                quoted = False
            continue
        if ch == '"' and depth:
            quoted = True
        elif ch == "{":
            start = i if depth == 0 else start
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                spans.append(text[start : i + 1])
    return spans


def _score(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise VerdictError(f"{key} is {value!r}, not a score")
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.0+)?\s*(/\s*5)?\s*", value):
        value = float(value.split("/")[0])
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int):
        raise VerdictError(f"{key} is {value!r}, not a whole number")
    if not LOW <= value <= HIGH:
        raise VerdictError(f"{key} is {value}, outside {LOW}-{HIGH}")
    return value


def parse_verdict(answer: str) -> Verdict:
    """The verdict in a model's answer: the last JSON object in it that has every score.

    Accepted: the object alone, in prose, in a markdown fence; scores as whole numbers, whole
    floats (4.0) or strings ("4", "4/5"); keys in any case. Refused (``VerdictError``): no JSON
    object, a missing score, a score that is not a whole number or is out of 1–5. A missing
    reason is empty; a long one is cut to ``MAX_REASON`` characters on one line.
    """
    candidates = []
    for span in _objects(answer or ""):
        try:
            obj = json.loads(span)
        except json.JSONDecodeError:
            continue
        if isinstance(obj, dict):
            candidates.append({str(k).strip().lower(): v for k, v in obj.items()})
    if not candidates:
        raise VerdictError("no JSON object in the answer")
    complete = [c for c in candidates if all(k in c for k in SCORES)]
    if not complete:
        missing = [k for k in SCORES if k not in candidates[-1]]
        raise VerdictError(f"missing {', '.join(missing)}")
    obj = complete[-1]
    scores = {k: _score(obj[k], k) for k in SCORES}
    reason = " ".join(str(obj.get("reason") or "").split())[:MAX_REASON]
    return Verdict(**scores, reason=reason)


# -- asking the model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeItem:
    """One pair to judge: frames sampled at the same times from source and target, and the
    rubric question (``rubric``)."""

    source: list[Any]  # (H, W, 3) uint8 RGB frames
    target: list[Any]
    question: str


def _fit(frame: Any, longest: int):
    """A frame as a PIL image whose longest side is at most ``longest`` (aspect kept)."""
    from PIL import Image

    image = Image.fromarray(frame)
    scale = longest / max(image.size)
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BICUBIC)
    return image


class Judge:
    """A transformers image-text-to-text chat model answering the rubric (``models.judge``).

    Each pair is one user message: for each sampled time, "Frame pair k:" and the source and
    target frames as images, then the question. Greedy decoding, ``batch_size`` pairs per
    ``generate``. An answer that ``parse_verdict`` refuses is asked once more with the reason
    (``retry_prompt``); a second refusal comes back as its ``VerdictError`` (the pair is then
    unscored: never a pass).
    """

    def __init__(self, model: Any, processor: Any, spec: Any):
        self.spec = spec
        self.device = spec.torch_device()
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.longest = int(spec.options.get("image_size", 448))
        self.max_new_tokens = int(spec.options.get("max_new_tokens", 128))

    @classmethod
    def load(cls, spec: Any) -> Judge:
        from transformers import AutoModelForImageTextToText

        from senorita.models.vlm import load_chat_processor

        kwargs = spec.pretrained_kwargs()
        processor = load_chat_processor(spec.id, "models.judge.id", **kwargs)
        model = AutoModelForImageTextToText.from_pretrained(
            spec.id, dtype=spec.torch_dtype(), **kwargs
        )
        return cls(model, processor, spec)

    def _message(self, item: JudgeItem, question: str) -> tuple[str, list[Any]]:
        content, images = [], []
        for k, (src, tgt) in enumerate(zip(item.source, item.target, strict=True)):
            content += [{"type": "text", "text": f"Frame pair {k + 1}:"}]
            content += [{"type": "image"}, {"type": "image"}]
            images += [_fit(src, self.longest), _fit(tgt, self.longest)]
        content.append({"type": "text", "text": question})
        prompt = self.processor.apply_chat_template(
            [{"role": "user", "content": content}], add_generation_prompt=True
        )
        return prompt, images

    def answer(self, items: list[JudgeItem], questions: list[str]) -> list[str]:
        """The model's raw answers to ``questions`` about ``items`` (one each)."""
        import torch

        answers: list[str] = []
        dtype = next(self.model.parameters()).dtype
        for start in range(0, len(items), self.spec.batch_size):
            chunk = range(start, min(start + self.spec.batch_size, len(items)))
            built = [self._message(items[i], questions[i]) for i in chunk]
            inputs = self.processor(
                text=[p for p, _ in built],
                images=[img for _, imgs in built for img in imgs],
                return_tensors="pt",
                padding=True,
            ).to(self.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
            with torch.inference_mode():
                ids = self.model.generate(
                    **inputs, max_new_tokens=self.max_new_tokens, do_sample=False
                )
            new = ids[:, inputs["input_ids"].shape[1] :]
            answers += [
                t.strip() for t in self.processor.batch_decode(new, skip_special_tokens=True)
            ]
        return answers

    def __call__(self, items: list[JudgeItem]) -> list[Verdict | VerdictError]:
        """A verdict per item, or the error of its second unreadable answer."""
        results: list[Verdict | VerdictError] = []
        for answer in self.answer(items, [i.question for i in items]):
            try:
                results.append(parse_verdict(answer))
            except VerdictError as err:
                results.append(err)
        again = [i for i, r in enumerate(results) if isinstance(r, VerdictError)]
        if again:
            questions = [retry_prompt(items[i].question, str(results[i])) for i in again]
            for i, answer in zip(
                again, self.answer([items[i] for i in again], questions), strict=True
            ):
                try:
                    results[i] = parse_verdict(answer)
                except VerdictError as err:
                    results[i] = err
        return results
