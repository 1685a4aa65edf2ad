"""The task registry: all 18 tasks of Señorita-2M in one place.

A task is enabled when its maker exists in this code base (``MAKERS`` below) and the config does
not switch it off. Tasks whose makers are not built yet are declared here but never run.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    id: str
    number: int  # row in SPEC.md's table
    maker: str  # what makes the pair
    source: str  # what the pair's source video is
    target: str  # what the pair's target video is
    share: float  # fraction of the released Señorita-2M pairs (a sampling target)
    needs: tuple[str, ...]  # upstream products: clips, captions, masks, control maps, an expert
    templates: tuple[str, ...]  # instruction templates; {obj}, {style} ... filled per pair


# fmt: off
TASKS: tuple[Task, ...] = (
    Task("object_addition", 1, "remover expert, pair reversed", "object-removed video",
         "original", 0.266, ("clips", "masks", "expert:remover"),
         ("Add {obj}.", "Insert {obj}.", "Put {obj} in the video.", "Add a {obj} to the scene.")),
    Task("object_removal", 2, "remover expert", "original", "object removed", 0.207,
         ("clips", "masks", "expert:remover"),
         ("Remove the {obj}.", "Omit the {obj}.", "Wipe out the {obj}.", "Erase the {obj}.",
          "Eliminate the {obj}.", "Discard the {obj}.")),
    Task("local_stylization", 3, "local stylizer", "original", "masked object restyled", 0.175,
         ("clips", "masks", "control:hed", "control:canny", "control:depth",
          "expert:local_stylizer"),
         ("Make this {obj} {attribute}.", "Turn the {obj} {attribute}.",
          "Change the {obj} to {attribute}.")),
    Task("grounding", 4, "Grounding DINO + SAM2", "original", "object mask video", 0.110,
         ("clips", "masks"),
         ("Ground the {obj}.", "Segment the {obj}.", "Detect the {obj} mask.",
          "Find the {obj}.")),
    Task("object_swap", 5, "LLM + FLUX-Fill + inpainter expert", "original", "object replaced",
         0.089, ("clips", "masks", "captions", "expert:inpainter"),
         ("Swap the {obj} for {new}.", "Replace the {obj} with {new}.",
          "Transform the {obj} into {new}.", "Turn the {obj} into {new}.")),
    Task("global_stylization", 6, "global stylizer", "original", "stylized", 0.031,
         ("clips", "captions", "control:hed", "control:canny", "control:depth",
          "expert:global_stylizer"),
         ("Make it {style} style.", "Turn it into {style} style.", "Render it in {style} style.",
          "Apply {style} style.")),
    Task("outpainting", 7, "cut operator (border)", "cut video", "original", 0.020, ("clips",),
         ("Extend the video beyond its borders.", "Outpaint the video.",
          "Fill in the missing borders.", "Expand the frame.", "Complete the cut-off edges.")),
    Task("inpainting", 8, "cut operator (hole)", "video with region cut out", "original", 0.012,
         ("clips",),
         ("Fill in the missing region.", "Inpaint the hole.", "Restore the cut-out area.",
          "Complete the missing part.", "Fill the black gap.")),
    Task("colorization", 9, "grayscale operator", "gray", "colour", 0.007, ("clips",),
         ("Colorize the video.", "Add colour to the video.", "Make it colourful.",
          "Turn the gray video into colour.", "Colour this black and white video.")),
    Task("canny_to_video", 10, "Canny detector", "edge video", "original", 0.011, ("clips",),
         ("Generate a video according to the canny edges.", "Canny to video.",
          "Create a video from the canny map.", "Render a video following these edges.",
          "Make a video from the edge map.")),
    Task("depth_to_video", 11, "depth estimator", "depth video", "original", 0.011,
         ("clips", "control:depth"),
         ("Generate a video according to the depth map.", "Depth to video.",
          "Create a video from the depth.")),
    Task("depth_detection", 12, "depth estimator", "original", "depth video", 0.011,
         ("clips", "control:depth"),
         ("Estimate the depth.", "Predict the depth map.", "Extract depth.")),
    Task("hed_to_video", 13, "HED edge detector", "HED video", "original", 0.011,
         ("clips", "control:hed"),
         ("Generate a video according to the HED edges.", "HED to video.",
          "Create a video from the soft edges.")),
    Task("hed_detection", 14, "HED edge detector", "original", "HED video", 0.011,
         ("clips", "control:hed"),
         ("Detect HED edges.", "Extract the HED map.", "Find the soft edges.")),
    Task("scribble_to_video", 15, "fake-scribble detector", "scribble video", "original", 0.011,
         ("clips", "control:scribble"),
         ("Generate a video according to the scribble.", "Scribble to video.",
          "Create a video from the sketch.")),
    Task("scribble_detection", 16, "fake-scribble detector", "original", "scribble video", 0.011,
         ("clips", "control:scribble"),
         ("Draw a scribble of the video.", "Extract the scribble.", "Sketch the video.")),
    Task("deblur", 17, "blur operator", "blurred", "original", 0.003, ("clips",),
         ("Deblur the video.", "Sharpen the video.", "Remove the blur.", "Make it sharp.",
          "Restore the blurry video.", "Unblur this video.")),
    Task("upscale", 18, "downsize operator", "low-res", "original", 0.003, ("clips",),
         ("Upscale the video.", "Increase the resolution.", "Make it high resolution.",
          "Super-resolve the video.", "Enhance the video resolution.")),
)
# fmt: on

TASKS_BY_ID: dict[str, Task] = {t.id: t for t in TASKS}

# Tasks whose maker exists in this code base, mapped to the stage that runs it. The Snakefile
# enables exactly these (minus any the config switches off).
MAKERS: dict[str, str] = {
    "deblur": "operator",
    "upscale": "operator",
    "colorization": "operator",
    "canny_to_video": "operator",
    "outpainting": "operator",
    "inpainting": "operator",
    "depth_to_video": "control",
    "depth_detection": "control",
    "hed_to_video": "control",
    "hed_detection": "control",
    "scribble_to_video": "control",
    "scribble_detection": "control",
    "grounding": "masks",
    "object_removal": "expert",
    "local_stylization": "expert",
    "object_addition": "reversed",
    "object_swap": "expert",
    "global_stylization": "expert",
}


def enabled_tasks(task_config: dict[str, dict]) -> list[str]:
    """Ids of the tasks to build, in registry order.

    Raises ValueError naming the task when the config enables a task whose maker does not exist.
    """
    enabled = []
    for task in TASKS:
        cfg = task_config.get(task.id, {})
        if task.id not in MAKERS:
            if cfg.get("enabled"):
                raise ValueError(
                    f"config tasks.{task.id}.enabled: the maker for '{task.id}' "
                    f"({task.maker}) is not built yet"
                )
            continue
        if cfg.get("enabled", True):
            enabled.append(task.id)
    return enabled
