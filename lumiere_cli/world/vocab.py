"""The world's words: object colours, shapes, motions, backgrounds, and how captions are written.

A caption names four attributes. The canonical form is

    a {colour} {shape} {motion} on a {background} background

and it always works; paraphrases (synonyms, no background phrase) exist so that a model trained
on them copes with how people actually type prompts. Randomness here comes from a `random.Random`
(or anything `as_random` turns into one), never from global state.

`HELD_OUT` lists 13 of the 126 (colour, shape, motion) triples (~10%) that training never shows.
Each one uses a distinct (colour, shape), (colour, motion) and (shape, motion) pair, so every pair
inside a held-out triple is still seen in training: generating a held-out triple means composing
words the model has only met apart.
"""

from __future__ import annotations

import random
import re
from itertools import product
from typing import Any

# Object colours, 0-255 RGB. Chosen far apart from each other (closest pair, orange/yellow or
# red/orange, ~110 apart) and from every background: the closest colour to a background is
# purple on gray (~108). The detector's "object" threshold sits well below that.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 30, 30),
    "orange": (255, 130, 0),
    "yellow": (245, 230, 40),
    "green": (30, 170, 50),
    "blue": (30, 80, 230),
    "purple": (140, 40, 190),
}

BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    "black": (0, 0, 0),
    "white": (255, 255, 255),
    "gray": (128, 128, 128),
}

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

MOTIONS: tuple[str, ...] = (
    "moving left",
    "moving right",
    "moving up",
    "moving down",
    "growing",
    "shrinking",
    "bouncing",
)

HELD_OUT: frozenset[tuple[str, str, str]] = frozenset(
    {
        ("red", "circle", "moving left"),
        ("orange", "square", "moving right"),
        ("yellow", "triangle", "moving up"),
        ("green", "circle", "moving down"),
        ("blue", "square", "growing"),
        ("purple", "triangle", "shrinking"),
        ("red", "square", "bouncing"),
        ("orange", "triangle", "growing"),
        ("yellow", "circle", "shrinking"),
        ("green", "square", "moving up"),
        ("blue", "triangle", "moving right"),
        ("purple", "circle", "bouncing"),
        ("red", "triangle", "moving down"),
    }
)

ALL_TRIPLES: tuple[tuple[str, str, str], ...] = tuple(product(COLOURS, SHAPES, MOTIONS))
TRAIN_TRIPLES: tuple[tuple[str, str, str], ...] = tuple(t for t in ALL_TRIPLES if t not in HELD_OUT)
HELD_OUT_TRIPLES: tuple[tuple[str, str, str], ...] = tuple(t for t in ALL_TRIPLES if t in HELD_OUT)

# Paraphrases. The first entry of each list is the canonical word or phrase.
SHAPE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "circle": ("circle", "ball", "disc"),
    "square": ("square", "box"),
    "triangle": ("triangle",),
}

MOTION_SYNONYMS: dict[str, tuple[str, ...]] = {
    "moving left": ("moving left", "moving to the left", "going left", "sliding left"),
    "moving right": ("moving right", "moving to the right", "going right", "sliding right"),
    "moving up": ("moving up", "moving upwards", "going up", "sliding up", "rising"),
    "moving down": ("moving down", "moving downwards", "going down", "sliding down", "sinking"),
    "growing": ("growing", "expanding", "getting bigger"),
    "shrinking": ("shrinking", "getting smaller", "contracting"),
    "bouncing": ("bouncing", "bouncing up and down"),
}

# Accepted when parsing only (people write "grey"); never generated.
_PARSE_ONLY_BACKGROUNDS = {"grey": "gray"}


def as_random(rng: Any) -> random.Random:
    """A `random.Random` from a `random.Random` (returned as is), an int seed, or a
    `torch.Generator` (one draw seeds a new Random, so the generator's state advances)."""
    if isinstance(rng, random.Random):
        return rng
    if isinstance(rng, int):
        return random.Random(rng)
    if type(rng).__name__ == "Generator" and hasattr(rng, "manual_seed"):
        import torch  # local: vocab stays importable without torch

        return random.Random(int(torch.randint(0, 2**62, (), generator=rng)))
    raise TypeError(f"expected random.Random, int or torch.Generator, got {type(rng).__name__}")


def _get(spec: Any, name: str) -> str:
    return spec[name] if isinstance(spec, dict) else getattr(spec, name)


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def caption(spec: Any) -> str:
    """The canonical caption of a spec (a ClipSpec or a dict with colour/shape/motion/background)."""
    colour = _get(spec, "colour")
    return (
        f"{article(colour)} {colour} {_get(spec, 'shape')} {_get(spec, 'motion')} "
        f"on a {_get(spec, 'background')} background"
    )


def paraphrase(spec: Any, rng: Any) -> str:
    """A random rewording of `caption(spec)`: shape and motion synonyms, and half the time no
    background phrase. Canonical words are among the choices, so it can return the caption itself."""
    rng = as_random(rng)
    colour = _get(spec, "colour")
    shape = rng.choice(SHAPE_SYNONYMS[_get(spec, "shape")])
    motion = rng.choice(MOTION_SYNONYMS[_get(spec, "motion")])
    text = f"{article(colour)} {colour} {shape} {motion}"
    if rng.random() < 0.5:
        text += f" on a {_get(spec, 'background')} background"
    return text


# The motion a contrastive encoder most easily mistakes for each one: the same words, mirrored.
OPPOSITE_MOTION: dict[str, str] = {
    "moving left": "moving right",
    "moving right": "moving left",
    "moving up": "moving down",
    "moving down": "moving up",
    "growing": "shrinking",
    "shrinking": "growing",
}


def swap_one(text: str, rng: Any) -> str:
    """`text` with one of the attributes it names changed: a hard negative for contrastive training.

    A contrastive encoder trained on random batches rarely meets two captions that differ in one
    word, so it learns a bag of words: the shipped encoder's features for "moving left" and "moving
    right" were 99% alike. Negatives that differ in exactly one attribute (NegCLIP, Yuksekgonul et
    al. 2023) make every word count. Motions swap to their mirror image where they have one; the
    wording (synonyms, a missing background phrase) stays the caption's own.
    """
    rng = as_random(rng)
    tokens = text.split()
    spans = _mentions(tokens)
    if not spans:
        raise ValueError(f"caption names no attribute: {text!r}")
    attribute = rng.choice(sorted(spans))
    start, end, value = spans[attribute]
    said = " ".join(tokens[start:end])
    if attribute == "motion":
        new = OPPOSITE_MOTION.get(value) or rng.choice([m for m in MOTIONS if m != value])
        synonyms = MOTION_SYNONYMS
    else:
        table = {"colour": COLOURS, "shape": SHAPES, "background": BACKGROUNDS}[attribute]
        new = rng.choice([v for v in table if v != value])
        synonyms = SHAPE_SYNONYMS if attribute == "shape" else {}
    # Same wording where the new value has it ("going left" -> "going right"), else canonical.
    old_phrases, new_phrases = synonyms.get(value, (value,)), synonyms.get(new, (new,))
    index = old_phrases.index(said) if said in old_phrases else 0
    tokens[start:end] = new_phrases[index if index < len(new_phrases) else 0].split()
    if attribute == "colour" and start > 0 and tokens[start - 1] in ("a", "an"):
        tokens[start - 1] = article(new)
    return " ".join(tokens)


def vocabulary() -> tuple[str, ...]:
    """Every word that `caption` or `paraphrase` can produce, sorted."""
    words = {"a", "an", "on", "background"}
    words.update(COLOURS)
    words.update(BACKGROUNDS)
    for phrases in (*SHAPE_SYNONYMS.values(), *MOTION_SYNONYMS.values()):
        for phrase in phrases:
            words.update(phrase.split())
    return tuple(sorted(words))


def _phrase_table() -> list[tuple[tuple[str, ...], str, str]]:
    # (tokens, attribute, value), longest phrases first so that "bouncing up and down" wins over
    # "bouncing" and is not also read as "moving up".
    table: list[tuple[tuple[str, ...], str, str]] = []
    for value, phrases in MOTION_SYNONYMS.items():
        table += [(tuple(p.split()), "motion", value) for p in phrases]
    for value, phrases in SHAPE_SYNONYMS.items():
        table += [(tuple(p.split()), "shape", value) for p in phrases]
    table += [(("squares",), "shape", "square"), (("circles",), "shape", "circle")]
    table += [((c,), "colour", c) for c in COLOURS]
    table += [((b,), "background", b) for b in BACKGROUNDS]
    table += [((w,), "background", b) for w, b in _PARSE_ONLY_BACKGROUNDS.items()]
    return sorted(table, key=lambda row: -len(row[0]))


_PHRASES = _phrase_table()


def parse_caption(text: str) -> dict[str, str] | None:
    """The attributes a prompt names, as a partial spec {colour, shape, motion, background}, or
    None when it names none. Reads canonical captions and paraphrases; the first mention of each
    attribute wins. Background words count only as backgrounds, since no object has those colours."""
    found = {attribute: value for attribute, (_, _, value) in _mentions(re.findall(r"[a-z]+", text.lower())).items()}
    return found or None


def _mentions(tokens: list[str]) -> dict[str, tuple[int, int, str]]:
    """{attribute: (start, end, value)} of the first phrase naming each attribute in `tokens`."""
    spans: dict[str, tuple[int, int, str]] = {}
    i = 0
    while i < len(tokens):
        for phrase, attribute, value in _PHRASES:
            if tuple(tokens[i : i + len(phrase)]) == phrase:
                spans.setdefault(attribute, (i, i + len(phrase), value))
                i += len(phrase)
                break
        else:
            i += 1
    return spans
