"""Test fixture: a tiny model with CogVLM2's remote-code interface (``trust_remote_code``):
``build_conversation_input_ids`` (image tokens marked by token_type_ids) and a ``generate`` that
takes ``images`` and returns the prompt followed by the answer, as CogVLM2's does."""

import numpy as np
import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedModel

from .configuration_tinycogvlm import TinyCogVLMConfig


class TinyCogVLMForCausalLM(PreTrainedModel):
    config_class = TinyCogVLMConfig

    def __init__(self, config):
        super().__init__(config)
        self.lm = LlamaForCausalLM(LlamaConfig(**config.language))
        self.vision = torch.nn.Linear(3 * config.patch**2, config.language["hidden_size"])
        self.post_init()

    def build_conversation_input_ids(
        self, tokenizer, query, history=None, images=None, template_version=None
    ):
        text = tokenizer(f"Question: {query} Answer:", add_special_tokens=False)["input_ids"]
        n = self.config.image_tokens
        ids = [tokenizer.bos_token_id] + [tokenizer.pad_token_id] * n + text
        size = self.config.image_size
        pixels = np.asarray(images[0].convert("RGB").resize((size, size)), dtype=np.float32)
        return {
            "input_ids": torch.tensor(ids),
            "token_type_ids": torch.tensor([0] + [1] * n + [0] * len(text)),
            "attention_mask": torch.ones(len(ids), dtype=torch.long),
            "images": [torch.from_numpy(pixels / 255).permute(2, 0, 1)],
        }

    def generate(self, input_ids, token_type_ids, attention_mask, images, **kwargs):
        p = self.config.patch
        image = images[0][0]
        patches = (
            image.unfold(1, p, p).unfold(2, p, p).permute(1, 2, 0, 3, 4).reshape(-1, 3 * p * p)
        )
        embeds = self.lm.get_input_embeddings()(input_ids).clone()
        embeds[token_type_ids == 1] = self.vision(patches.to(embeds.dtype))
        new = self.lm.generate(inputs_embeds=embeds, attention_mask=attention_mask, **kwargs)
        return torch.cat([input_ids, new], dim=1)
