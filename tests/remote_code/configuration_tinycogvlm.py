"""Test fixture: the config of a tiny CogVLM2-style model shipped as remote code."""

from transformers import PretrainedConfig


class TinyCogVLMConfig(PretrainedConfig):
    model_type = "tinycogvlm"

    def __init__(self, language=None, image_tokens=4, patch=8, image_size=16, **kwargs):
        self.language = language or {}  # not "text_config": transformers reads that as a config
        self.image_tokens = image_tokens
        self.patch = patch
        self.image_size = image_size
        super().__init__(**kwargs)
