"""The language model step of the experts: a transformers causal chat model (a Llama-3 8B
instruct model by default) asked for one short noun phrase (the attribute for local
stylization, the new object for a swap).

Answers are validated (one short noun phrase, not the object itself, not empty) and replaced by
a seeded draw from a configured fallback list when they fail; every answer is cached per clip
and question in a JSON-lines file that survives reruns, so a rerun asks nothing twice.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch

from senorita.models import ModelSpec
from senorita.phrases import clean_phrase

log = logging.getLogger(__name__)


class ChatLLM:
    def __init__(self, model, tokenizer, spec: ModelSpec):
        self.spec = spec
        self.device = spec.torch_device()
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.max_new_tokens = int(spec.options.get("max_new_tokens", 16))
        self.temperature = float(spec.options.get("temperature", 0.7))

    @classmethod
    def load(cls, spec: ModelSpec) -> ChatLLM:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        revision = None if spec.is_local else spec.revision
        tokenizer = AutoTokenizer.from_pretrained(spec.id, revision=revision)
        if tokenizer.chat_template is None:
            raise ValueError(
                f"config models.llm.id {spec.id!r}: the tokenizer has no chat template"
            )
        model = AutoModelForCausalLM.from_pretrained(
            spec.id, revision=revision, dtype=spec.torch_dtype()
        )
        log.info("llm: loaded %s (%s on %s)", spec.id, spec.torch_dtype(), spec.torch_device())
        return cls(model, tokenizer, spec)

    @torch.inference_mode()
    def __call__(self, question: str, seed: int) -> str:
        """The model's answer to one question, sampled with a seeded generator."""
        messages = [{"role": "user", "content": question}]
        ids = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        ).to(self.device)
        torch.manual_seed(seed)  # generate() samples from the global generator
        out = self.model.generate(
            **ids,
            max_new_tokens=self.max_new_tokens,
            do_sample=self.temperature > 0,
            temperature=self.temperature if self.temperature > 0 else None,
            pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        )
        answer = out[0, ids["input_ids"].shape[1] :]
        return self.tokenizer.decode(answer, skip_special_tokens=True).strip()


def validate(answer: str, obj: str, max_words: int = 3) -> str | None:
    """One short noun phrase from the answer's first line, or None (empty, or the object)."""
    line = answer.strip().splitlines()[0].strip(" \"'.`*:") if answer.strip() else ""
    letters = sum(c.isascii() and c.isalpha() for c in line)
    if letters < 0.8 * len(line.replace(" ", "")):  # noise, not words
        return None
    phrase = clean_phrase(line, max_words)
    if not phrase or phrase == obj or len(phrase) > 40 or min(map(len, phrase.split())) < 2:
        return None
    return phrase


class AnswerCache:
    """Answers per (clip, question), kept in a JSON-lines file across reruns."""

    def __init__(self, path: Path):
        self.path = path
        self.answers: dict[str, dict] = {}
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:  # the line being written when a job died
                    continue
                self.answers[entry["key"]] = entry
        path.parent.mkdir(parents=True, exist_ok=True)

    def get(self, key: str) -> dict | None:
        return self.answers.get(key)

    def put(self, key: str, entry: dict) -> None:
        entry = {"key": key, **entry}
        self.answers[key] = entry
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")


def propose(
    llm: ChatLLM | None,
    cache: AnswerCache,
    key: str,
    question: str,
    obj: str,
    fallback: list[str],
    seed: int,
) -> tuple[str, str]:
    """(phrase, where it came from: "llm" or "fallback"), from the cache when asked before."""
    if (hit := cache.get(key)) is not None:
        return hit["phrase"], hit["source"]
    raw = llm(question, seed) if llm is not None else ""
    phrase = validate(raw, obj)
    source = "llm"
    if phrase is None:
        choices = [f for f in fallback if f != obj] or fallback
        phrase = choices[int(np.random.default_rng(seed).integers(len(choices)))]
        source = "fallback"
    cache.put(key, {"phrase": phrase, "source": source, "raw": raw, "question": question})
    return phrase, source
