"""The cascade's second half: a spatial super-resolution STUNet (SSR) over temporal windows.

- `cascade.header`: where an SSR's weights are and what their header says (no torch);
- `cascade.model`: `SSRModel` (text encoder, STUNet, augmentation embedding) and the conditioning;
- `cascade.weights`: save and load SSR weights (safetensors, config and hash in the header);
- `cascade.sample`: `upscale()`, the SSR on a clip, over temporal MultiDiffusion windows;
- `cascade.train`: the SSR's training stages (frames, then the temporal layers on clips).

Import from the submodules: this package imports nothing heavy.
"""
