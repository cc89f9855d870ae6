"""`lumiere eval --report DIR`: what the eval saw, for a person to judge by eye.

- `DIR/<split>.png`: a contact sheet per split, one row per clip (every other frame, enlarged
  without smoothing), the prompt and the strict verdict beside it (wrong attributes in red);
- `DIR/index.html`: the table of `lumiere eval`, the shape and motion confusion tables, and every
  clip playing (an animated GIF per clip under `DIR/clips/`) with its prompt and verdict.

The page needs nothing but the files beside it (no script from elsewhere); a small inline script
counts the clips that loaded into `body[data-clips-loaded]`, which the tests read in headless
Chromium.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Callable

import numpy as np

from .eval import ATTRIBUTES, COLUMNS, EvalReport, confusion

SHEET_SCALE = 3  # screen pixels per model pixel on the contact sheet
SHEET_FRAME_STEP = 2  # every other frame
GIF_SCALE = 4
TEXT_WIDTH = 560


def verdict_lines(sample: dict[str, Any]) -> list[tuple[str, bool]]:
    """(text, right) lines describing a clip's reading: the prompt, then each attribute read
    (asked -> read where wrong), then the measures."""
    read, expected = sample["read"], sample["expected"]
    lines = [(f"{sample['split']} seed {sample['seed']}: {sample['prompt']}", sample["all"])]
    for a in ATTRIBUTES:
        got = read[a] or "none"
        ok = sample["correct"][a]
        lines.append((f"{a}: {got}" if ok else f"{a}: {got} (asked {expected[a]})", ok))
    lines.append((f"IoU {read['mean_iou']:.3f}  residual {read['residual']:.1f}  grain {read['grain']:.1f}  "
                  f"spread {read['spread']:.1f}  stability {read['stability']:.3f}", True))
    lines.append((f"consistent: {'yes' if read['consistent'] else 'no'}; matched filter: {sample['detected']['shape']} "
                  f"{sample['detected']['motion']}", read["consistent"]))
    return lines


def contact_sheet(clips: list[np.ndarray], samples: list[dict[str, Any]]) -> np.ndarray:
    """uint8 (H, W, 3): one row per clip, frames then the verdict's text."""
    from PIL import Image, ImageDraw

    rows = []
    for clip, sample in zip(clips, samples):
        frames = np.asarray(clip)[::SHEET_FRAME_STEP]
        strip = np.concatenate(list(frames), axis=1).repeat(SHEET_SCALE, 0).repeat(SHEET_SCALE, 1)
        strip = np.pad(strip, ((2, 2), (2, 2), (0, 0)), constant_values=255)
        text = Image.new("RGB", (TEXT_WIDTH, strip.shape[0]), "white")
        draw = ImageDraw.Draw(text)
        for i, (line, ok) in enumerate(verdict_lines(sample)):
            draw.text((6, 2 + 12 * i), line, fill=(0, 0, 0) if ok else (200, 0, 0))
        rows.append(np.concatenate([strip, np.asarray(text)], axis=1))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255) for r in rows]
    return np.concatenate(rows, axis=0)


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    cells = lambda tag, row: "".join(f"<{tag}>{html.escape(str(v))}</{tag}>" for v in row)  # noqa: E731
    return (f"<table><tr>{cells('th', head)}</tr>"
            + "".join(f"<tr>{cells('td', r)}</tr>" for r in rows) + "</table>")


def confusion_html(samples: list[dict[str, Any]], attribute: str) -> str:
    """One attribute's confusion table (asked rows, read columns, "none" included)."""
    table = confusion(samples, attribute)
    read = sorted({r for row in table.values() for r in row})
    rows = [(asked, *(str(table[asked].get(r, 0)) for r in read)) for asked in sorted(table)]
    return _table((f"asked \\ read ({attribute})", *read), rows)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>lumiere eval</title>
<style>
body {{ font-family: sans-serif; margin: 1em; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 2px 6px; font-size: 13px; }}
.clips {{ display: flex; flex-wrap: wrap; gap: 8px; }}
.clip {{ width: 260px; font-size: 12px; border: 2px solid #8c8; padding: 4px; }}
.clip.wrong {{ border-color: #d66; }}
.clip img {{ image-rendering: pixelated; width: 128px; height: 128px; }}
.bad {{ color: #c00; }}
</style></head>
<body data-clips-total="{total}">
<h1>lumiere eval</h1>
<p>{options}</p>
{summary}
<p>{caption}</p>
<h2>Confusion</h2>
{confusions}
{splits}
<script>
(function () {{
  var imgs = Array.prototype.slice.call(document.querySelectorAll("img.clip-video"));
  function count() {{
    document.body.dataset.clipsLoaded = imgs.filter(function (i) {{ return i.complete && i.naturalWidth > 0; }}).length;
  }}
  imgs.forEach(function (i) {{ i.addEventListener("load", count); }});
  window.addEventListener("load", count);
  count();
}})();
</script>
</body></html>
"""


def _clip_card(sample: dict[str, Any], src: str) -> str:
    lines = "".join(f'<div class="{"" if ok else "bad"}">{html.escape(text)}</div>'
                    for text, ok in verdict_lines(sample))
    return (f'<div class="clip{"" if sample["all"] else " wrong"}"><img class="clip-video" src="{src}" '
            f'alt="{html.escape(sample["prompt"])}">{lines}</div>')


def write_report(report: EvalReport, out_dir: str | Path,
                 progress: Callable[[str, int, int], None] | None = None) -> list[Path]:
    """Write the contact sheets, the clips as GIFs and index.html into out_dir (created when
    missing; files of the same names replaced). Needs `report.clips` (`evaluate(keep_clips=True)`).
    Returns the paths written, the page first."""
    from PIL import Image

    from .video_io import write_clip

    if not report.clips:
        raise ValueError("the report holds no clips: evaluate with keep_clips=True")
    out = Path(out_dir)
    (out / "clips").mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    sections = []
    for split, clips in report.clips.items():
        samples = [s for s in report.samples if s["split"] == split]
        sheet = out / f"{split}.png"
        Image.fromarray(contact_sheet(clips, samples)).save(sheet)
        written.append(sheet)
        cards = []
        for k, (clip, sample) in enumerate(zip(clips, samples)):
            gif = write_clip(out / "clips" / f"{split}_{k:04d}.gif", np.asarray(clip), fps=8,
                             display_scale=GIF_SCALE, overwrite=True)
            written.append(gif)
            cards.append(_clip_card(sample, f"clips/{gif.name}"))
            if progress is not None:
                progress(f"report {split}", k + 1, len(clips))
        sections.append(f'<h2>{html.escape(split)} <a href="{sheet.name}">(contact sheet)</a></h2>'
                        f'<div class="clips">{"".join(cards)}</div>')
    options = ", ".join(f"{k} {v}" for k, v in report.options.items() if k in ("sampler", "steps", "guidance",
                                                                               "schedule_shift", "eta"))
    page = _PAGE.format(
        total=sum(len(c) for c in report.clips.values()),
        options=html.escape(f"{report.n} clips per split, seed {report.seed}; {options}"),
        summary=_table(COLUMNS, report.rows()),
        caption=html.escape(report.caption()),
        confusions="".join(confusion_html(report.samples, a) for a in ("shape", "motion")),
        splits="".join(sections),
    )
    index = out / "index.html"
    index.write_text(page, encoding="utf-8")
    return [index, *written]


__all__ = ["confusion_html", "contact_sheet", "verdict_lines", "write_report"]
