"""Training, in the paper's stages (see TrainConfig):

1. "text": the text encoder, contrastively against a small clip encoder (open_clip's CLIP loss);
2. "t2i": the text-to-image U-Net (`unet.spatial`) on single frames (images, or one frame of a clip);
3. "video": the inflated STUNet's temporal layers on clips, spatial weights frozen;
4. "video-unfrozen": optionally, every U-Net weight on clips, at a lower learning rate.

The text encoder is frozen after its own stage unless `text_lr` > 0, which fine-tunes it in a
diffusion stage at its own peak rate.

Each stage starts from the previous stage's weights (`init`: a weights file, its folder or the
previous run's folder) and writes `out_dir/weights/`; `model_overrides` changes what an existing
model can change (frames in a video stage, fps, schedule shifts, sampling defaults). Every
`log_every` steps it reports `progress("train", done, total, loss=..., lr=..., clips_per_s=...,
grad_norm=...)` and appends the same numbers to `out_dir/metrics.jsonl`. `train_plan` runs a list
of stages (a plan file: `load_plan`), skipping finished ones.

The package's modules:

- `loop`: `train(cfg)`, the loop itself; it knows a dataset only as "the batch of (step, rank,
  micro-batch)" and a stage only as a module whose forward returns the loss;
- `data`: where batches come from: the procedural world (the only importer of `world` in
  training) or the user's captioned videos (`TrainConfig.data`, read through `lumiere_cli.data`,
  decoded in worker processes, bucketed by shape, bad files skipped and counted), and validation;
- `stages`: the stage modules, the stage's model config and starting weights;
- `checkpoint`: safetensors checkpoints (model, EMA, optimizer state, the data stream's position),
  never pickles; a run resumes exactly, also under another process count;
- `plan`: plan files and the card's record of each stage.

Under `torchrun --nproc_per_node N` (and `--nnodes M` across machines) each process trains on its
own share of the data with DDP (gloo on CPU, nccl on CUDA); rank 0 writes.
"""

from .checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from .data import POSTERIOR_MIN_SIGMA, diffusion_batch, make_batch, open_data
from .loop import METRICS, Dist, check, lr_at, setup, train, tune_allocator
from .plan import card_with_record, load_plan, plan_stages, stage_record, steps_done, train_plan
from .stages import (
    CHANGEABLE_ON_INIT, STAGES, VIDEO_STAGES, ContrastiveStage, DiffusionStage, initial_model, stage_model_config,
)

__all__ = [
    "CHANGEABLE_ON_INIT", "CHECKPOINT", "METRICS", "POSTERIOR_MIN_SIGMA", "STAGES", "VIDEO_STAGES",
    "ContrastiveStage", "DiffusionStage", "Dist", "card_with_record", "check", "diffusion_batch",
    "initial_model", "load_checkpoint", "load_plan", "lr_at", "make_batch", "open_data", "plan_stages",
    "save_checkpoint", "setup", "stage_model_config", "stage_record", "steps_done", "train", "train_plan",
    "tune_allocator",
]
