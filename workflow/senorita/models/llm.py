"""The language model step of the experts: a transformers causal chat model (a Llama-3 8B
instruct model by default) asked for the attribute of a local stylization, the new object of a
swap, and each expert pair's instruction.

Answers are validated (a phrase: short, real words, not the object itself; an instruction: a
few real words naming the objects) and replaced when they fail: a phrase by a seeded draw from
a configured fallback list, an instruction by the task's template. Every answer is cached per
clip and question in a JSON-lines file that survives reruns, so a rerun asks nothing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np
import torch

from senorita.answer_cache import AnswerCache
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

        tokenizer = AutoTokenizer.from_pretrained(spec.id, **spec.pretrained_kwargs())
        if tokenizer.chat_template is None:
            raise ValueError(
                f"config models.llm.id {spec.id!r}: the tokenizer has no chat template"
            )
        model = AutoModelForCausalLM.from_pretrained(
            spec.id, **spec.pretrained_kwargs(dtype=spec.torch_dtype())
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


def validate_instruction(answer: str, required: list[str], max_words: int) -> str | None:
    """An editing instruction from the answer's first line: real words, 2 to ``max_words`` of
    them, naming every ``required`` phrase's last word; capitalised, ending with a period."""
    line = answer.strip().splitlines()[0].strip(" \"'`*") if answer.strip() else ""
    letters = sum(c.isascii() and (c.isalpha() or c in " ,.'-") for c in line)
    words = line.split()
    if not line or letters < len(line) or not 2 <= len(words) <= max_words:
        return None
    lower = line.lower()
    if not all(r.split()[-1].lower() in lower for r in required if r.split()):
        return None
    line = line.rstrip(".!") + "."
    return line[0].upper() + line[1:]


def propose(
    llm: ChatLLM | None,
    cache: AnswerCache,
    key: str,
    question: str,
    check: Callable[[str], str | None],
    fallback: list[str] | None,
    seed: int,
) -> tuple[str | None, str]:
    """(answer, where it came from), from the cache when asked before.

    The model's answer passes ``check`` (which returns it cleaned, or None); otherwise a seeded
    draw from ``fallback`` stands in ("fallback"), or None when there is no fallback ("none":
    the caller has its own, e.g. an instruction template).
    """
    if (hit := cache.get(key)) is not None:
        return hit["answer"], hit["source"]
    raw = llm(question, seed) if llm is not None else ""
    answer = check(raw)
    source = "llm"
    if answer is None and fallback:
        answer = fallback[int(np.random.default_rng(seed).integers(len(fallback)))]
        source = "fallback"
    elif answer is None:
        source = "none"
    cache.put(key, {"answer": answer, "source": source, "raw": raw, "question": question})
    return answer, source
