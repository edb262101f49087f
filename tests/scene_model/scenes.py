"""Seeded scenes with captions: what the scene model is trained on and what tests query.

A scene is a small record (shapes, colours, count, size, position, background, texture, or a
rendered word or phrase); `render` draws it with PIL and `caption` says it in one canonical
sentence. The same (seed, index) gives the same scene on any machine with the same Pillow.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, replace

from PIL import Image, ImageDraw, ImageFont

COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 225),
    "yellow": (245, 215, 30),
    "orange": (250, 135, 20),
    "purple": (135, 45, 175),
    "pink": (250, 140, 200),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
}
BACKGROUNDS = ("white", "black", "gray", "yellow", "blue", "green")
SHAPES = ("circle", "square", "triangle", "star", "cross")
TEXTURES = ("plain", "striped", "dotted", "checkered")
POSITIONS = {
    "center": (0.5, 0.5),
    "left": (0.25, 0.5),
    "right": (0.75, 0.5),
    "top": (0.5, 0.25),
    "bottom": (0.5, 0.75),
}
NUMBERS = {1: "one", 2: "two", 3: "three", 4: "four"}
WORDS = (
    "cat", "dog", "sun", "stop", "exit", "open", "sale", "beach",
    "pizza", "music", "tax", "love", "hello", "snow", "car", "map",
)  # fmt: skip
PHRASES = ("open now", "no entry", "happy birthday", "thank you")
SIZES = ("small", "large")


@dataclass(frozen=True)
class Thing:
    shape: str
    colour: str


@dataclass(frozen=True)
class Scene:
    """One picture's content; `jitter` seeds the details no caption mentions."""

    background: str
    texture: str = "plain"
    things: tuple[Thing, ...] = ()
    count: int = 1  # copies of things[0] when there is one kind of thing
    size: str = "small"
    position: str = "center"  # for one small thing; two things are side by side
    words: str = ""  # a rendered word or phrase instead of shapes
    ink: str = "black"  # the words' colour
    jitter: int = 0


def random_scene(rng: random.Random) -> Scene:
    background = rng.choice(BACKGROUNDS)
    texture = rng.choice(TEXTURES) if rng.random() < 0.4 else "plain"
    jitter = rng.randrange(1 << 30)
    colours = [c for c in COLOURS if c != background]
    roll = rng.random()
    if roll < 0.2:
        words = rng.choice(PHRASES) if rng.random() < 0.25 else rng.choice(WORDS)
        return Scene(background, texture, words=words, ink=rng.choice(colours), jitter=jitter)
    if roll < 0.4:
        a, b = rng.sample(SHAPES, 2)
        ca, cb = rng.sample(colours, 2)
        return Scene(background, texture, (Thing(a, ca), Thing(b, cb)), jitter=jitter)
    thing = Thing(rng.choice(SHAPES), rng.choice(colours))
    count = rng.choice((1, 1, 2, 3, 4))
    if count > 1:
        return Scene(background, texture, (thing,), count=count, jitter=jitter)
    size = rng.choice(SIZES)
    position = rng.choice(tuple(POSITIONS)) if size == "small" else "center"
    return Scene(background, texture, (thing,), size=size, position=position, jitter=jitter)


def random_variant(scene: Scene, rng: random.Random) -> Scene:
    """The same scene with one thing about it changed (a shape, a colour, the count, the size
    or place, the word, the background): in one training batch, the pair teaches that
    exactly this attribute matters."""
    colours = [c for c in COLOURS if c != scene.background]
    if scene.words:
        change = rng.choice(("words", "ink", "background"))
        if change == "words":
            return replace(scene, words=rng.choice([w for w in WORDS if w != scene.words]))
        if change == "ink":
            return replace(scene, ink=rng.choice([c for c in colours if c != scene.ink]))
    else:
        change = rng.choice(("shape", "shape", "colour", "colour", "layout", "background"))
        first = scene.things[0]
        others = {t.shape for t in scene.things} | {t.colour for t in scene.things}
        if change == "shape":
            shape = rng.choice([s for s in SHAPES if s not in others])
            return replace(scene, things=(Thing(shape, first.colour), *scene.things[1:]))
        if change == "colour":
            colour = rng.choice([c for c in colours if c not in others])
            return replace(scene, things=(Thing(first.shape, colour), *scene.things[1:]))
        if change == "layout" and len(scene.things) == 1:
            if scene.count > 1:
                return replace(scene, count=rng.choice([n for n in NUMBERS if n != scene.count]))
            if scene.size == "large":
                return replace(scene, size="small", position=rng.choice(tuple(POSITIONS)))
            other = [p for p in POSITIONS if p != scene.position]
            return (
                replace(scene, size="large", position="center")
                if rng.random() < 0.3
                else (replace(scene, position=rng.choice(other)))
            )
        if change == "layout":  # two things: swap their places
            return replace(scene, things=scene.things[::-1])
    background = rng.choice(
        [
            b
            for b in BACKGROUNDS
            if b != scene.background and b not in (scene.ink, *(t.colour for t in scene.things))
        ]
    )
    return replace(scene, background=background)


def scenes(seed: int, n: int) -> list[Scene]:
    rng = random.Random(seed)
    return [random_scene(rng) for _ in range(n)]


def caption(scene: Scene) -> str:
    """The canonical caption: every attribute the picture shows."""
    return _describe(scene, random.Random(0), full=True)


def caption_variant(scene: Scene, rng: random.Random) -> str:
    """A caption that may leave attributes out or phrase them differently (for training)."""
    return _describe(scene, rng, full=False)


def _describe(scene: Scene, rng: random.Random, full: bool) -> str:
    def keep(p: float) -> bool:
        return full or rng.random() < p

    if scene.words:
        ink = f" in {scene.ink}" if keep(0.5) else ""
        kind = "phrase" if " " in scene.words else "word"
        subject = rng.choice(
            [f'the {kind} "{scene.words}" written{ink}', f'a sign that says "{scene.words}"']
            if not full
            else [f'the {kind} "{scene.words}" written{ink}']
        )
    elif len(scene.things) == 2:
        left, right = scene.things
        a, b = _noun(left, 1, keep(0.85)), _noun(right, 1, keep(0.85))
        if full or rng.random() < 0.5:
            subject = f"{a} to the left of {b}"
        elif rng.random() < 0.5:
            subject = f"{b} to the right of {a}"
        else:
            subject = f"{a} and {b}"
    else:
        thing = scene.things[0]
        subject = _noun(thing, scene.count, keep(0.85), scene.size if keep(0.6) else "")
        if scene.count == 1 and scene.size == "small" and keep(0.6):
            subject += " in the center" if scene.position == "center" else ""
            subject += f" at the {scene.position}" if scene.position != "center" else ""
    if keep(0.7):
        texture = f"{scene.texture} " if scene.texture != "plain" and keep(0.7) else ""
        subject += f" on a {texture}{scene.background} background"
    if not full and rng.random() < 0.3:
        subject = rng.choice(["a picture of ", "a photo of ", "an image of "]) + subject
    return subject


def _noun(thing: Thing, count: int, colour: bool, size: str = "") -> str:
    words = [size] if size else []
    if colour:
        words.append(thing.colour)
    words.append(thing.shape + ("es" if count > 1 and thing.shape == "cross" else ""))
    if count > 1 and thing.shape != "cross":
        words[-1] += "s"
    article = NUMBERS[count] if count > 1 else ("an" if words[0][0] in "aeiou" else "a")
    return " ".join([article, *words])


def render(scene: Scene, size: int = 128) -> Image.Image:
    rng = random.Random(scene.jitter)
    image = Image.new("RGB", (size, size), _shade(COLOURS[scene.background], rng))
    draw = ImageDraw.Draw(image)
    _texture(draw, scene, size, rng)
    if scene.words:
        _write(draw, scene, size, rng)
    elif len(scene.things) == 2:
        for thing, x in zip(scene.things, (0.27, 0.73), strict=True):
            centre = (x + rng.uniform(-0.04, 0.04), 0.5 + rng.uniform(-0.15, 0.15))
            _shape(draw, thing, centre, 0.17 * rng.uniform(0.9, 1.1), size, rng)
    elif scene.count > 1:
        for centre in _spots(scene.count, rng):
            _shape(draw, scene.things[0], centre, 0.11 * rng.uniform(0.9, 1.1), size, rng)
    else:
        x, y = POSITIONS[scene.position]
        centre = (x + rng.uniform(-0.04, 0.04), y + rng.uniform(-0.04, 0.04))
        radius = (0.14 if scene.size == "small" else 0.34) * rng.uniform(0.9, 1.1)
        _shape(draw, scene.things[0], centre, radius, size, rng)
    return image


def _shade(rgb: tuple[int, int, int], rng: random.Random) -> tuple[int, int, int]:
    return tuple(min(255, max(0, c + rng.randint(-14, 14))) for c in rgb)  # type: ignore[return-value]


def _texture(draw: ImageDraw.ImageDraw, scene: Scene, size: int, rng: random.Random) -> None:
    if scene.texture == "plain":
        return
    base = COLOURS[scene.background]
    lift = 60 if sum(base) < 300 else -60
    tone = tuple(min(255, max(0, c + lift)) for c in base)
    step = max(4, size // rng.choice((8, 10, 12)))
    for i in range(0, size + step, step):
        for j in range(0, size + step, step):
            if scene.texture == "striped" and j == 0:
                draw.rectangle((i, 0, i + step // 2 - 1, size), fill=tone)
            elif scene.texture == "dotted":
                r = step // 5 + 1
                draw.ellipse((i + step // 2 - r, j + step // 2 - r, i + step // 2 + r,
                              j + step // 2 + r), fill=tone)  # fmt: skip
            elif scene.texture == "checkered" and (i // step + j // step) % 2:
                draw.rectangle((i, j, i + step - 1, j + step - 1), fill=tone)


def _spots(count: int, rng: random.Random) -> list[tuple[float, float]]:
    """`count` centres far enough apart that small shapes do not touch."""
    for _ in range(200):
        spots = [(rng.uniform(0.15, 0.85), rng.uniform(0.15, 0.85)) for _ in range(count)]
        if all(math.dist(a, b) > 0.27 for i, a in enumerate(spots) for b in spots[i + 1 :]):
            return spots
    return [(0.3, 0.3), (0.7, 0.7), (0.3, 0.7), (0.7, 0.3)][:count]


def _shape(
    draw: ImageDraw.ImageDraw,
    thing: Thing,
    centre: tuple[float, float],
    radius: float,
    size: int,
    rng: random.Random,
) -> None:
    cx, cy, r = centre[0] * size, centre[1] * size, radius * size
    fill = _shade(COLOURS[thing.colour], rng)
    turn = rng.uniform(-0.2, 0.2)
    if thing.shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif thing.shape == "square":
        draw.regular_polygon((cx, cy, r * 1.2), 4, rotation=math.degrees(turn), fill=fill)
    elif thing.shape == "triangle":
        draw.regular_polygon((cx, cy + r * 0.15, r * 1.15), 3, rotation=math.degrees(turn),
                             fill=fill)  # fmt: skip
    elif thing.shape == "star":
        points = [
            (cx + (r if k % 2 == 0 else r * 0.45) * math.sin(turn + k * math.pi / 5),
             cy - (r if k % 2 == 0 else r * 0.45) * math.cos(turn + k * math.pi / 5))
            for k in range(10)
        ]  # fmt: skip
        draw.polygon(points, fill=fill)
    else:  # cross
        w = r * 0.38
        draw.rectangle((cx - w, cy - r, cx + w, cy + r), fill=fill)
        draw.rectangle((cx - r, cy - w, cx + r, cy + w), fill=fill)


def _write(draw: ImageDraw.ImageDraw, scene: Scene, size: int, rng: random.Random) -> None:
    lines = scene.words.upper().split()
    longest = max(len(line) for line in lines)
    points = int(size * min(0.42, 1.45 / longest) * rng.uniform(0.9, 1.05))
    font = ImageFont.load_default(size=points)
    text = "\n".join(lines)
    box = draw.multiline_textbbox((0, 0), text, font=font, align="center")
    w, h = box[2] - box[0], box[3] - box[1]
    x = (size - w) / 2 - box[0] + rng.uniform(-0.04, 0.04) * size
    y = (size - h) / 2 - box[1] + rng.uniform(-0.04, 0.04) * size
    draw.multiline_text((x, y), text, font=font, fill=_shade(COLOURS[scene.ink], rng),
                        align="center")  # fmt: skip
