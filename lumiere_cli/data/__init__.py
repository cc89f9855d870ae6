"""The user's captioned videos and images as training data (the procedural world is `world/`).

- `data.entries`: `read_entries(path) -> Listing`: a CSV or JSONL manifest, or a folder of media
  files each with a same-stem .txt caption, as `Entry`s (nothing is decoded);
- `data.media`: `scan(entries) -> list[Scanned]`: each entry's kind, size, rate and span from its
  header, with one frame decoded at each end of the span (a truncated file fails there), or the
  reason it cannot be used; `read_clip(...)`: one training clip, seeking to its start;
- `data.buckets`: the (frames, size) buckets a model config allows and the one an entry fills;
- `data.check`: `check_data(...) -> DataReport`, what `lumiere data check` prints.

No torch here: `lumiere data check` needs none. The training pipeline built on this lives in
`train.data`.
"""
