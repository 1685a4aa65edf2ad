"""Training the four experts from the pipeline's own annotated clips (stage 6's recipes).

- ``views``: one data view per expert over the annotated shards (clips, captions, masks,
  control maps), drawing sample types in the recipe's proportions;
- ``build``: an expert pipeline made from a base CogVideoX checkpoint (widened for inpainting,
  a ControlNet copied from it), or continued from an expert checkpoint;
- ``loop``: the accelerate training loop with resumable checkpoints and a diffusers-format final
  checkpoint that the expert rules load by path.
"""
