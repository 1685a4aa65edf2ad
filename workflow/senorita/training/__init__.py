"""Training the four experts and the super-resolver from the pipeline's own annotated clips
(stage 6's recipes).

- ``views``: one data view per expert over the annotated shards (clips, captions, masks,
  control maps; for the super-resolver, re-cuts of the original videos and their degradations),
  drawing sample types in the recipe's proportions;
- ``build``: an expert pipeline made from a base CogVideoX checkpoint (widened for inpainting
  and super-resolution, a ControlNet copied from it), or continued from an expert checkpoint;
- ``loop``: the accelerate training loop with resumable checkpoints and a diffusers-format final
  checkpoint that the expert rules load by path.
"""
