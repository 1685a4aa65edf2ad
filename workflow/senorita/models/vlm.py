"""Object phrases from a vision-language chat model: which objects are in this frame?

Two interfaces, chosen from the checkpoint itself:

- any transformers image-text-to-text chat model (``AutoModelForImageTextToText`` with an
  ``AutoProcessor`` that has a chat template: LLaVA, Qwen2-VL, Idefics, ...), batched;
- CogVLM2 (the paper's), whose remote code (``trust_remote_code``) is a causal LM with its own
  ``build_conversation_input_ids``; one image per call, as its model card does.

The answer is free text; ``senorita.phrases.parse_phrases`` turns it into phrases.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from senorita.models import ModelSpec

log = logging.getLogger(__name__)

DEFAULT_QUESTION = (
    "List the distinct objects you can see in this image as a comma-separated list of short "
    "noun phrases, most prominent first."
)


def load_processor(model_id: str, **kwargs):
    """``AutoProcessor.from_pretrained``; where the processor's video part needs torchvision
    (Qwen2-VL and Qwen2.5-VL in transformers 5: torchvision is kept out of this project), the same
    processor class without its video processor, for images and text.

    Only the chat-template path takes this: it asks about still frames, never videos.
    """
    import inspect

    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(model_id, **kwargs)
    except ImportError as err:
        if "torchvision" not in str(err).lower():
            raise
        missing = err
    from transformers.models.auto.processing_auto import processor_class_from_name
    from transformers.utils import cached_file

    name = None
    for file in ("processor_config.json", "preprocessor_config.json", "tokenizer_config.json"):
        path = cached_file(
            model_id,
            file,
            revision=kwargs.get("revision"),
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
        )
        if path and (name := json.loads(Path(path).read_text()).get("processor_class")):
            break
    base = processor_class_from_name(name) if name else None
    if base is None or "video_processor" not in inspect.signature(base.__init__).parameters:
        raise missing

    class ImagesOnly(base):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kw):
            super().__init__(
                image_processor=image_processor,
                tokenizer=tokenizer,
                video_processor=None,
                chat_template=chat_template,
                **kw,
            )

    ImagesOnly.__name__ = ImagesOnly.__qualname__ = base.__name__
    log.info("vlm: %s without its video processor (it needs torchvision)", base.__name__)
    return ImagesOnly.from_pretrained(model_id, **kwargs)


def load_chat_processor(model_id: str, key: str, **kwargs):
    """``load_processor`` for a chat model asked in batches: it must have a chat template (an
    error naming the config ``key`` otherwise), pads on the left and has a pad token."""
    processor = load_processor(model_id, **kwargs)
    if getattr(processor, "chat_template", None) is None:
        raise ValueError(
            f"config {key} {model_id!r}: the processor has no chat template; "
            "pick an image-text-to-text chat model"
        )
    processor.tokenizer.padding_side = "left"  # batched generation continues on the right
    if processor.tokenizer.pad_token is None:  # Llama 3's tokenizers have none
        processor.tokenizer.pad_token = processor.tokenizer.eos_token
    return processor


class ObjectLister:
    def __init__(self, model, processor, spec: ModelSpec, cogvlm: bool):
        self.spec = spec
        self.device = spec.torch_device()
        self.model = model.to(self.device).eval()
        self.processor = processor  # a processor, or CogVLM2's tokenizer
        self.cogvlm = cogvlm
        self.question = spec.options.get("question") or DEFAULT_QUESTION
        self.max_new_tokens = int(spec.options.get("max_new_tokens", 64))
        self.min_new_tokens = int(spec.options.get("min_new_tokens", 0))

    @classmethod
    def load(cls, spec: ModelSpec) -> ObjectLister:
        from transformers import AutoConfig

        remote = bool(spec.options.get("trust_remote_code", False))
        kwargs = spec.pretrained_kwargs(trust_remote_code=remote)
        config = AutoConfig.from_pretrained(spec.id, **kwargs)
        auto_map = getattr(config, "auto_map", None) or {}
        if remote and "AutoModelForCausalLM" in auto_map:  # CogVLM2 and its kind
            from transformers import AutoModelForCausalLM, AutoTokenizer

            processor = AutoTokenizer.from_pretrained(spec.id, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(
                spec.id, dtype=spec.torch_dtype(), **kwargs
            )
            cogvlm = True
        else:
            from transformers import AutoModelForImageTextToText

            processor = load_chat_processor(spec.id, "models.vlm.id", **kwargs)
            model = AutoModelForImageTextToText.from_pretrained(
                spec.id, dtype=spec.torch_dtype(), **kwargs
            )
            cogvlm = False
        log.info(
            "vlm: loaded %s (%s, %s on %s)",
            spec.id,
            "CogVLM remote code" if cogvlm else "chat template",
            spec.torch_dtype(),
            spec.torch_device(),
        )
        return cls(model, processor, spec, cogvlm)

    def _generate_kwargs(self) -> dict:
        return {
            "max_new_tokens": self.max_new_tokens,
            "min_new_tokens": self.min_new_tokens,
            "do_sample": False,
        }

    @torch.inference_mode()
    def __call__(self, images: list[np.ndarray]) -> list[str]:
        """The model's answer to the question for each (H, W, 3) uint8 RGB image."""
        if self.cogvlm:
            return [self._ask_cogvlm(Image.fromarray(img)) for img in images]
        messages = [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": self.question}],
            }
        ]
        prompt = self.processor.apply_chat_template(messages, add_generation_prompt=True)
        dtype = next(self.model.parameters()).dtype
        answers: list[str] = []
        for start in range(0, len(images), self.spec.batch_size):
            batch = [Image.fromarray(img) for img in images[start : start + self.spec.batch_size]]
            inputs = self.processor(
                images=batch, text=[prompt] * len(batch), return_tensors="pt", padding=True
            ).to(self.device)
            inputs["pixel_values"] = inputs["pixel_values"].to(dtype)
            ids = self.model.generate(**inputs, **self._generate_kwargs())
            new = ids[:, inputs["input_ids"].shape[1] :]
            answers += [
                t.strip() for t in self.processor.batch_decode(new, skip_special_tokens=True)
            ]
        return answers

    def _ask_cogvlm(self, image: Image.Image) -> str:
        # CogVLM2's model card: build_conversation_input_ids, then generate on one image.
        tokenizer = self.processor
        built = self.model.build_conversation_input_ids(
            tokenizer, query=self.question, history=[], images=[image], template_version="chat"
        )
        dtype = next(self.model.parameters()).dtype
        inputs = {
            "input_ids": built["input_ids"].unsqueeze(0).to(self.device),
            "token_type_ids": built["token_type_ids"].unsqueeze(0).to(self.device),
            "attention_mask": built["attention_mask"].unsqueeze(0).to(self.device),
            "images": [[built["images"][0].to(self.device).to(dtype)]],
        }
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 128002
        ids = self.model.generate(**inputs, **self._generate_kwargs(), pad_token_id=pad)
        return tokenizer.decode(ids[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
