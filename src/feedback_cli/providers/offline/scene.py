"""The offline backend's small visual vocabulary: parse a prompt into a scene, draw it, read it back from pixels.

A SIMULATION of the round mechanism, not evidence of quality. The offline renderer draws the objects a prompt
names (from a vocabulary of silhouettes), with their colours, counts, left/right/above/below relations,
quoted text on a banner and a few styles. Like a real generator it sometimes misses an element: which ones is
decided by the seed, and an element the prompt mentions more often (as a revised prompt does) is missed less
often, so a later round can fix what an earlier one missed. The offline element check reads the rendered
pixels (segments the objects, classifies their silhouettes against the same templates, reads their colours
and positions, matches the banner text) and never the prompt or any metadata.
"""

from __future__ import annotations

import itertools
import random
import re
import zlib
from dataclasses import dataclass, field
from functools import cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from feedback_cli.agents.questions import Question, QuestionSet

# --- vocabulary -------------------------------------------------------------------------------------------

#: canonical object -> silhouette; drawn from unit-square polygons/ellipses (see `_draw_shape`)
OBJECTS: dict[str, str] = {
    "ball": "circle",
    "box": "square",
    "tree": "triangle",
    "kite": "diamond",
    "car": "wide_rect",
    "tower": "tall_rect",
    "fish": "wide_ellipse",
    "balloon": "tall_ellipse",
    "flower": "cross",
    "donut": "ring",
    "house": "house",
    "cone": "down_triangle",
    "cat": "cat",
    "moon": "crescent",
    "dog": "dog",
}
#: every word form that names an object
OBJECT_WORDS: dict[str, str] = {
    **{k: k for k in OBJECTS},
    "balls": "ball",
    "boxes": "box",
    "crate": "box",
    "crates": "box",
    "cube": "box",
    "cubes": "box",
    "trees": "tree",
    "pine": "tree",
    "pines": "tree",
    "kites": "kite",
    "cars": "car",
    "truck": "car",
    "trucks": "car",
    "towers": "tower",
    "building": "tower",
    "buildings": "tower",
    "fishes": "fish",
    "balloons": "balloon",
    "egg": "balloon",
    "eggs": "balloon",
    "flowers": "flower",
    "donuts": "donut",
    "wheel": "donut",
    "wheels": "donut",
    "houses": "house",
    "cabin": "house",
    "cabins": "house",
    "cones": "cone",
    "cats": "cat",
    "kitten": "cat",
    "kittens": "cat",
    "moons": "moon",
    "dogs": "dog",
    "puppy": "dog",
    "puppies": "dog",
}
PLURAL: dict[str, str] = {"box": "boxes", "fish": "fish"}

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 35, 40),
    "orange": (245, 140, 20),
    "yellow": (240, 220, 40),
    "green": (40, 150, 60),
    "blue": (35, 75, 210),
    "purple": (125, 50, 170),
    "pink": (245, 120, 190),
    "brown": (120, 70, 30),
    "black": (15, 15, 15),
    "white": (252, 252, 252),
    "grey": (110, 110, 110),
}
COLOUR_ALIASES = {"gray": "grey"}

NUMBERS: dict[str, int] = {"one": 1, "a": 1, "an": 1, "single": 1, "two": 2, "three": 3, "four": 4, "five": 5}
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five"}
MAX_COUNT = 5

#: relation phrase (longest first) -> canonical relation
RELATIONS: list[tuple[str, str]] = [
    ("to the left of", "left of"),
    ("left of", "left of"),
    ("to the right of", "right of"),
    ("right of", "right of"),
    ("on top of", "above"),
    ("above", "above"),
    ("over", "above"),
    ("below", "below"),
    ("under", "below"),
    ("beneath", "below"),
    ("next to", "next to"),
    ("beside", "next to"),
]

#: style word -> effect the renderer applies and the check can see
STYLES: dict[str, str] = {
    "monochrome": "monochrome",
    "black and white": "monochrome",
    "grayscale": "monochrome",
    "greyscale": "monochrome",
    "watercolor": "soft",
    "watercolour": "soft",
    "soft focus": "soft",
    "dreamy": "soft",
    "blurry": "soft",
}
MOTIONS = ("moving", "moves", "rolling", "rolls", "flying", "flies", "drifting", "drifts", "running", "runs")
CAMERAS: dict[str, str] = {
    "zoom in": "zoom_in",
    "zooms in": "zoom_in",
    "push in": "zoom_in",
    "pan": "pan",
    "pans": "pan",
    "zoom out": "zoom_out",
    "pull back": "zoom_out",
}

BACKGROUND_TOP = (150, 200, 235)
BACKGROUND_BOTTOM = (205, 225, 170)
BANNER = (255, 255, 255)
#: a pixel differs from its row's background by more than this: it belongs to a drawn object
FOREGROUND_DISTANCE = 40.0
MIN_AREA = 12

# miss rates of one mention; k mentions divide them by k*k (a revised prompt's emphasis lowers them)
P_MISS_ENTITY = 0.3
P_WRONG_COLOUR = 0.3
P_WRONG_COUNT = 0.3
P_SWAP_RELATION = 0.3
P_MISSPELL = 0.35
P_NO_STYLE = 0.3


# --- parsing ----------------------------------------------------------------------------------------------


@dataclass
class Entity:
    name: str  # canonical object
    count: int = 1
    count_given: bool = False
    colour: str | None = None
    #: how many times the prompt mentions the object / its colour / its count (emphasis)
    mentions: int = 0
    colour_mentions: int = 0
    count_mentions: int = 0
    phrase: str = ""


@dataclass
class Relation:
    subject: str
    relation: str  # "left of", "right of", "above", "below", "next to"
    object: str
    mentions: int = 1
    phrase: str = ""


@dataclass
class ScenePlan:
    entities: list[Entity] = field(default_factory=list)
    relations: list[Relation] = field(default_factory=list)
    text: str | None = None
    text_mentions: int = 0
    style: str | None = None  # "monochrome" / "soft"
    style_word: str = ""
    style_mentions: int = 0
    motion: str | None = None
    camera: str | None = None
    unparsed: list[str] = field(default_factory=list)

    def entity(self, name: str) -> Entity | None:
        return next((e for e in self.entities if e.name == name), None)


_TOKEN = re.compile(r'"[^"]*"|[a-z]+')
_STOP = {
    "a",
    "an",
    "the",
    "of",
    "and",
    "with",
    "in",
    "on",
    "at",
    "to",
    "is",
    "are",
    "that",
    "says",
    "say",
    "reads",
    "read",
    "which",
    "its",
    "it",
    "their",
    "there",
    "clearly",
    "visible",
    "shown",
    "showing",
    "exactly",
    "by",
    "style",
    "scene",
    "picture",
    "image",
    "photo",
    "video",
    "camera",
    "some",
    "from",
    "while",
    "as",
    "each",
    "for",
}


def parse(prompt: str) -> ScenePlan:
    """The scene a prompt names, as far as the vocabulary goes; words outside it are listed as unparsed."""
    lowered = prompt.lower()
    plan = ScenePlan()
    quoted = re.findall(r'"([^"]+)"|“([^”]+)”', prompt)
    texts = [a or b for a, b in quoted]
    if texts:
        plan.text = texts[0].strip()
        plan.text_mentions = sum(1 for t in texts if t.strip().lower() == plan.text.lower())
    unquoted = re.sub(r'"[^"]*"|“[^”]*”', " ", lowered)
    for phrase, effect in STYLES.items():
        hits = len(re.findall(rf"\b{phrase}\b", unquoted))
        if hits and plan.style is None:
            plan.style, plan.style_word = effect, phrase
        if effect == plan.style:
            plan.style_mentions += hits
    for phrase, move in CAMERAS.items():
        if re.search(rf"\b{phrase}\b", unquoted) and plan.camera is None:
            plan.camera = move
    words = re.findall(r"[a-z]+", unquoted)
    plan.motion = next((w for w in words if w in MOTIONS), None)
    # entities with their modifiers: [count] [colour] noun
    mentions: list[tuple[int, str]] = []  # (word index, canonical) in order, for relations
    for i, word in enumerate(words):
        name = OBJECT_WORDS.get(word)
        if name is None:
            continue
        colour: str | None = None
        count: int | None = None  # a number word; "a"/"an" say one without asking for a count
        start = i
        for j in range(i - 1, max(-1, i - 4), -1):
            w = COLOUR_ALIASES.get(words[j], words[j])
            if w in COLOURS and colour is None:
                colour, start = w, j
            elif w in NUMBERS:
                start = j
                if w not in ("a", "an"):
                    count = NUMBERS[w]
                break
            else:
                break
        entity = plan.entity(name)
        if entity is None:
            entity = Entity(name=name, phrase=" ".join(words[start : i + 1]))
            if word != name and count is None:
                entity.count = 2  # "trees" with no number: more than one, no count asked
            plan.entities.append(entity)
        entity.mentions += 1
        if colour is not None:
            entity.colour = entity.colour or colour
            entity.colour_mentions += colour == entity.colour
        if count is not None:
            if not entity.count_given:
                entity.count, entity.count_given = min(count, MAX_COUNT), True
            entity.count_mentions += min(count, MAX_COUNT) == entity.count
        mentions.append((i, name))
    # relations: "<entity> ... <relation> ... <entity>" with the relation between two consecutive mentions
    for (i, first), (k, second) in itertools.pairwise(mentions):
        between = " ".join(words[i + 1 : k])
        for phrase, relation in RELATIONS:
            if re.search(rf"(^|\s){phrase}(\s|$)", between) and first != second:
                existing = next(
                    (r for r in plan.relations if (r.subject, r.relation, r.object) == (first, relation, second)),
                    None,
                )
                if existing is None:
                    plan.relations.append(Relation(first, relation, second, 1, f"{first} {relation} {second}"))
                else:
                    existing.mentions += 1
                break
    known = set(OBJECT_WORDS) | set(COLOURS) | set(COLOUR_ALIASES) | set(NUMBERS) | set(MOTIONS)
    known |= {w for p, _ in RELATIONS for w in p.split()} | {w for p in (*STYLES, *CAMERAS) for w in p.split()}
    plan.unparsed = sorted({w for w in words if w not in known and w not in _STOP and len(w) > 2})
    return plan


def plural(name: str, count: int = 2) -> str:
    if count == 1:
        return name
    return PLURAL.get(name, name + "s")


# --- drawing ----------------------------------------------------------------------------------------------


def _stable(text: str) -> int:
    return zlib.crc32(text.encode())


def _unit_shape(
    draw: ImageDraw.ImageDraw, shape: str, box: tuple[float, float, float, float], fill: object, background: object
) -> None:
    """Draw one silhouette into `box` (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0

    def p(u: float, v: float) -> tuple[float, float]:
        return (x0 + u * w, y0 + v * h)

    if shape == "circle":
        draw.ellipse(box, fill=fill)
    elif shape == "square":
        draw.rectangle(box, fill=fill)
    elif shape == "triangle":
        draw.polygon([p(0.5, 0), p(1, 1), p(0, 1)], fill=fill)
    elif shape == "down_triangle":
        draw.polygon([p(0, 0), p(1, 0), p(0.5, 1)], fill=fill)
    elif shape == "diamond":
        draw.polygon([p(0.5, 0), p(1, 0.5), p(0.5, 1), p(0, 0.5)], fill=fill)
    elif shape in ("wide_rect", "tall_rect"):
        draw.rectangle(box, fill=fill)
    elif shape in ("wide_ellipse", "tall_ellipse"):
        draw.ellipse(box, fill=fill)
    elif shape == "cross":
        draw.rectangle((*p(1 / 3, 0), *p(2 / 3, 1)), fill=fill)
        draw.rectangle((*p(0, 1 / 3), *p(1, 2 / 3)), fill=fill)
    elif shape == "ring":
        draw.ellipse(box, fill=fill)
        draw.ellipse((*p(0.3, 0.3), *p(0.7, 0.7)), fill=background)
    elif shape == "house":
        draw.polygon([p(0.5, 0), p(1, 0.45), p(1, 1), p(0, 1), p(0, 0.45)], fill=fill)
    elif shape == "cat":
        draw.ellipse((*p(0, 0.25), *p(1, 1)), fill=fill)
        draw.polygon([p(0.05, 0.45), p(0.12, 0), p(0.4, 0.3)], fill=fill)
        draw.polygon([p(0.95, 0.45), p(0.88, 0), p(0.6, 0.3)], fill=fill)
    elif shape == "crescent":
        draw.ellipse(box, fill=fill)
        draw.ellipse((*p(0.35, -0.05), *p(1.0, 0.8)), fill=background)
    elif shape == "dog":
        draw.rectangle((*p(0, 0.2), *p(0.75, 0.65)), fill=fill)  # body
        draw.rectangle((*p(0.65, 0), *p(1, 0.4)), fill=fill)  # head
        for u in (0.02, 0.55):
            draw.rectangle((*p(u, 0.6), *p(u + 0.18, 1)), fill=fill)  # legs
    else:
        raise ValueError(f"unknown shape {shape!r}")


def _aspect(shape: str) -> float:
    """Width / height of a silhouette's box."""
    return {"wide_rect": 2.0, "wide_ellipse": 2.0, "tall_rect": 0.5, "tall_ellipse": 0.5, "dog": 1.5}.get(shape, 1.0)


def _background(size: tuple[int, int]) -> np.ndarray:
    w, h = size
    top, bottom = np.array(BACKGROUND_TOP, float), np.array(BACKGROUND_BOTTOM, float)
    t = np.linspace(0, 1, h)[:, None, None]
    return np.round((top * (1 - t) + bottom * t) * np.ones((1, w, 1))).astype(np.uint8)


def _grey_visible(colour: str) -> bool:
    """A colour that stays distinct from the background once the image is turned grey."""
    lum = np.array([0.299, 0.587, 0.114])
    return abs(float(lum @ np.array(COLOURS[colour])) - float(lum @ np.array(BACKGROUND_TOP))) > 60


def _chance(rng: random.Random, base: float, mentions: int) -> bool:
    """True with probability base / mentions^2: an element said more often is missed less often."""
    return rng.random() < base / max(1, mentions) ** 2


@dataclass
class Rendered:
    image: Image.Image
    #: what was actually drawn (for tests and the trace; the element check never reads it)
    drawn: dict[str, object]


def draw_scene(plan: ScenePlan, prompt: str, seed: int, size: tuple[int, int]) -> Rendered:
    rng = random.Random(_stable(prompt) ^ (seed * 2654435761 & 0xFFFFFFFF))
    w, h = size
    image = Image.fromarray(_background(size), "RGB")
    draw = ImageDraw.Draw(image)
    drawn: dict[str, object] = {"objects": [], "missed": [], "text": None, "style": None}
    # which elements make it into this render (seed-dependent misses)
    groups: list[tuple[Entity, int, str]] = []
    for entity in plan.entities:
        if _chance(rng, P_MISS_ENTITY, entity.mentions):
            drawn["missed"].append(entity.name)  # type: ignore[union-attr]
            continue
        count = entity.count
        if entity.count_given and _chance(rng, P_WRONG_COUNT, entity.count_mentions):
            count = count + 1 if count < MAX_COUNT and (count == 1 or rng.random() < 0.5) else count - 1
        colour = entity.colour
        if colour is None or _chance(rng, P_WRONG_COLOUR, entity.colour_mentions):
            others = [c for c in COLOURS if c != entity.colour and (plan.style != "monochrome" or _grey_visible(c))]
            colour = others[rng.randrange(len(others))]
        groups.append((entity, count, colour))
    # layout: two rows when something is above/below something, groups ordered by left/right relations
    order = [g[0].name for g in groups]
    top_row: set[str] = set()
    bottom_row: set[str] = set()
    for rel in plan.relations:
        if rel.subject not in order or rel.object not in order:
            continue
        swap = _chance(rng, P_SWAP_RELATION, rel.mentions)
        subject, obj = (rel.object, rel.subject) if swap else (rel.subject, rel.object)
        if rel.relation in ("left of", "right of", "next to"):
            first, second = (subject, obj) if rel.relation != "right of" else (obj, subject)
            order.remove(first)
            order.insert(order.index(second), first)
            if rel.relation == "next to":  # adjacent: move the second right after the first
                order.remove(second)
                order.insert(order.index(first) + 1, second)
        else:
            upper, lower = (subject, obj) if rel.relation == "above" else (obj, subject)
            top_row.add(upper)
            bottom_row.add(lower)
    instances: list[tuple[str, str, int]] = []  # (name, colour, row)
    by_name = {g[0].name: g for g in groups}
    for name in order:
        entity, count, colour = by_name[name]
        row = 0 if name in top_row else 1 if name in bottom_row else -1
        instances += [(name, colour, row)] * count
    text = plan.text
    if text and _chance(rng, P_MISSPELL, plan.text_mentions):
        cut = rng.randrange(len(text))
        text = text[:cut] + text[cut + 1 :] if len(text) > 1 else text + text
    top = 4
    if text:
        font = _font()
        tw, th = _text_size(text)
        bx = (w - tw) // 2 - 3
        draw.rectangle((bx, 2, bx + tw + 6, 2 + th + 4), fill=BANNER)
        draw.text((bx + 3, 4), text, fill=(0, 0, 0), font=font)
        top = th + 10
        drawn["text"] = text
    margin, bottom = 8, h - 22
    rows_needed = 2 if (top_row or bottom_row or len(instances) > 4) else 1
    rows: list[list[tuple[str, str]]] = [[] for _ in range(rows_needed)]
    for name, colour, row in instances:
        if rows_needed == 1:
            rows[0].append((name, colour))
        elif row >= 0:
            rows[row].append((name, colour))
        else:  # free: the shorter row
            rows[0 if len(rows[0]) <= len(rows[1]) else 1].append((name, colour))
    row_h = (bottom - top) / rows_needed
    for r, row in enumerate(rows):
        if not row:
            continue
        slot_w = (w - 2 * margin) / len(row)
        for c, (name, colour) in enumerate(row):
            shape = OBJECTS[name]
            side = min(slot_w, row_h) * 0.75
            bw, bh = (side, side / _aspect(shape)) if _aspect(shape) >= 1 else (side * _aspect(shape), side)
            if _aspect(shape) > 1 and bw > slot_w * 0.85:
                bw, bh = slot_w * 0.85, slot_w * 0.85 / _aspect(shape)
            cx = margin + slot_w * (c + 0.5) + rng.uniform(-0.06, 0.06) * slot_w
            cy = top + row_h * (r + 0.5) + rng.uniform(-0.06, 0.06) * row_h
            box = (round(cx - bw / 2), round(cy - bh / 2), round(cx + bw / 2), round(cy + bh / 2))
            background = tuple(int(v) for v in _background((1, h))[min(h - 1, max(0, round(cy))), 0])
            _unit_shape(draw, shape, box, COLOURS[colour], background)
            drawn["objects"].append({"name": name, "colour": colour, "box": box})  # type: ignore[union-attr]
    style = plan.style
    if style and _chance(rng, P_NO_STYLE, plan.style_mentions):
        style = None
    if style == "monochrome":
        image = image.convert("L").convert("RGB")
    elif style == "soft":
        image = image.filter(ImageFilter.GaussianBlur(2.0))
    drawn["style"] = style
    return Rendered(image, drawn)


@cache
def _font() -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's default font; the renderer and the check draw with the same one, so the text can be compared."""
    return ImageFont.load_default()


def _text_size(text: str) -> tuple[int, int]:
    _, _, right, bottom = _font().getbbox(text)
    return max(1, right), max(11, bottom)


def names_vocabulary(prompt: str) -> bool:
    """The prompt names at least one object the offline renderer can draw."""
    return bool(parse(prompt).entities)


# --- reading the pixels back ------------------------------------------------------------------------------


@dataclass
class Seen:
    name: str  # the silhouette's object
    colour: str
    cx: float
    cy: float
    area: int


@dataclass
class Reading:
    objects: list[Seen]
    text_mask: np.ndarray | None  # the banner's dark pixels, or None when there is no banner
    saturation: float
    #: median over objects of the pixels in transition (15-85 % of the way) from the background to the
    #: object along its centre row: a crisp render has about one per edge, a blurred one several
    softness: float


def _descriptor(mask: np.ndarray) -> np.ndarray:
    """Silhouette features: log aspect ratio and an 8x8 occupancy grid of the bounding box."""
    ys, xs = np.nonzero(mask)
    crop = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float64)
    hh, ww = crop.shape
    grid = np.zeros((8, 8))
    for gy in range(8):
        for gx in range(8):
            cell = crop[
                gy * hh // 8 : max(gy * hh // 8 + 1, (gy + 1) * hh // 8),
                gx * ww // 8 : max(gx * ww // 8 + 1, (gx + 1) * ww // 8),
            ]
            grid[gy, gx] = cell.mean()
    return np.concatenate([[2.0 * np.log(ww / hh)], grid.ravel()])


@cache
def _templates() -> dict[str, np.ndarray]:
    out = {}
    for name, shape in OBJECTS.items():
        side = 48
        bw, bh = (side, side / _aspect(shape)) if _aspect(shape) >= 1 else (side * _aspect(shape), side)
        img = Image.new("L", (64, 64), 0)
        _unit_shape(ImageDraw.Draw(img), shape, (8, 8, 8 + bw, 8 + bh), 255, 0)
        out[name] = _descriptor(np.asarray(img) > 127)
    return out


def _components(mask: np.ndarray) -> list[np.ndarray]:
    """4-connected components of a boolean mask (each as a boolean mask), by runs per row and union-find:
    a few hundred runs instead of a walk over every pixel."""
    h, w = mask.shape
    padded = np.zeros((h, w + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    runs: list[tuple[int, int, int]] = []  # (row, start, end exclusive)
    for y in range(h):
        starts = np.nonzero(edges[y] == 1)[0]
        ends = np.nonzero(edges[y] == -1)[0]
        runs += [(y, int(s0), int(e0)) for s0, e0 in zip(starts, ends, strict=True)]
    parent = list(range(len(runs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    by_row: dict[int, list[int]] = {}
    for index, (y, s0, e0) in enumerate(runs):
        for other in by_row.get(y - 1, []):
            _, s1, e1 = runs[other]
            if s0 < e1 and s1 < e0:  # overlapping columns: the same component
                parent[root(index)] = root(other)
        by_row.setdefault(y, []).append(index)
    groups: dict[int, list[int]] = {}
    for index in range(len(runs)):
        groups.setdefault(root(index), []).append(index)
    out = []
    for members in sorted(groups.values(), key=lambda m: (runs[m[0]][0], runs[m[0]][1])):
        component = np.zeros((h, w), dtype=bool)
        for index in members:
            y, s0, e0 = runs[index]
            component[y, s0:e0] = True
        out.append(component)
    return out


def read(image: Image.Image) -> Reading:
    rgb = np.asarray(image.convert("RGB"), dtype=np.float64)
    h, w, _ = rgb.shape
    grey = rgb.mean(-1)
    saturation = float((rgb.max(-1) - rgb.min(-1)).mean())
    # the banner: pure white rows at the top
    banner = np.all(rgb >= 254.5, axis=-1)
    text_mask = None
    banner_rows = np.nonzero(banner[: h // 3].sum(1) >= 8)[0]
    skip = np.zeros((h, w), dtype=bool)
    if len(banner_rows):
        cols = np.nonzero(banner[banner_rows].any(0))[0]
        y0, y1, x0, x1 = banner_rows.min(), banner_rows.max(), cols.min(), cols.max()
        text_mask = grey[y0 : y1 + 1, x0 : x1 + 1] < 128
        skip[: y1 + 3, :] = True
    skip[h - 20 :, :] = True  # the `fbloop offline` stamp
    # background of each row: the median of the left and right margins
    edge = np.concatenate([rgb[:, :4], rgb[:, w - 4 :]], axis=1)
    row_bg = np.median(edge, axis=1)[:, None, :]
    distance = np.sqrt(((rgb - row_bg) ** 2).sum(-1))
    mask = (distance > FOREGROUND_DISTANCE) & ~skip
    transitions: list[float] = []
    templates = _templates()
    names = list(templates)
    table = np.stack([templates[n] for n in names])
    colour_names = list(COLOURS)
    colour_table = np.array([COLOURS[c] for c in colour_names], dtype=np.float64)
    objects = []
    for component in _components(mask):
        area = int(component.sum())
        if area < MIN_AREA:
            continue
        d = _descriptor(component)
        best = names[int(np.argmin(((table - d) ** 2).sum(1)))]
        pixels = rgb[component]
        median = np.median(pixels, axis=0)
        colour = colour_names[int(np.argmin(((colour_table - median) ** 2).sum(1)))]
        ys, xs = np.nonzero(component)
        objects.append(Seen(best, colour, float(xs.mean()), float(ys.mean()), area))
        row = round(ys.mean())
        x0, x1 = max(0, xs.min() - 6), min(w, xs.max() + 7)
        profile = distance[row, x0:x1]
        top = float(profile.max())
        if top > 0:
            transitions.append(float(((profile > 0.15 * top) & (profile < 0.85 * top)).sum()))
    softness = float(np.median(transitions)) if transitions else 0.0
    return Reading(objects, text_mask, saturation, softness)


def text_matches(reading: Reading, expected: str) -> bool:
    """The banner shows exactly `expected` (its dark pixels equal those of the expected text drawn the same way)."""
    if reading.text_mask is None:
        return False
    tw, th = _text_size(expected)
    canvas = Image.new("RGB", (tw + 7, th + 5), BANNER)  # the banner rectangle, edges included
    ImageDraw.Draw(canvas).text((3, 2), expected, fill=(0, 0, 0), font=_font())
    want = np.asarray(canvas.convert("L"), dtype=np.float64) < 128
    got = reading.text_mask
    if got.shape != want.shape:
        return False
    union = (got | want).sum()
    return bool(union) and float((got & want).sum() / union) >= 0.9


# --- questions and answers --------------------------------------------------------------------------------

OFFLINE_DECOMPOSER = "offline-decomposition"
CAMERA_WORDS = {"zoom_in": "zoom in", "zoom_out": "zoom out", "pan": "pan"}


def _are(entity: Entity) -> tuple[str, str]:
    """("Is there a", "ball") or ("Are there", "trees")."""
    return ("Are there", plural(entity.name)) if entity.count > 1 else ("Is there a", entity.name)


def decompose(source: str, kind: str) -> QuestionSet:
    """Deterministic DSG-style questions for the phrases of `source` the vocabulary knows."""
    from feedback_cli.agents.questions import normalize_questions

    plan = parse(source)
    out: list[Question] = []

    def add(category: str, args: list[str], phrase: str, question: str, parents: list[int] = ()) -> int:
        out.append(
            Question(
                id=len(out) + 1,
                parent_ids=list(parents),
                category=category,  # type: ignore[arg-type]
                args=args,
                phrase=phrase,
                question=question,
            )
        )
        return len(out)

    ids: dict[str, int] = {}
    for e in plan.entities:
        there, noun = _are(e)
        ids[e.name] = add("entity", [e.name], e.phrase, f"{there} {noun}?")
        if e.count_given:
            n = NUMBER_WORDS[e.count]
            word = plural(e.name, e.count)
            text = f"Is there exactly one {word}?" if e.count == 1 else f"Are there exactly {n} {word}?"
            add("count", [e.name, str(e.count)], f"{n} {word}", text, [ids[e.name]])
        if e.colour:
            text = f"Is the {e.name} {e.colour}?" if e.count == 1 else f"Are the {plural(e.name)} {e.colour}?"
            add("attribute", [e.name, e.colour], f"{e.colour} {plural(e.name, e.count)}", text, [ids[e.name]])
    for r in plan.relations:
        subject, obj = plan.entity(r.subject), plan.entity(r.object)
        assert subject is not None and obj is not None
        s_word, o_word = plural(r.subject, subject.count), plural(r.object, obj.count)
        verb = "is" if subject.count == 1 else "are"
        add(
            "relation",
            [r.subject, r.relation, r.object],
            f"the {s_word} {r.relation} the {o_word}",
            f"{verb.capitalize()} the {s_word} {r.relation} the {o_word}?",
            [ids[r.subject], ids[r.object]],
        )
    if plan.text:
        add("text", [plan.text], f'"{plan.text}"', f'Does the image show the text "{plan.text}"?')
    if plan.style:
        add("style", [plan.style_word], plan.style_word, f"Is the image {plan.style_word}?")
    if kind == "video" and plan.motion:
        add("motion", [plan.motion], plan.motion, f"Is something {plan.motion}?")
    if kind == "video" and plan.camera:
        word = CAMERA_WORDS[plan.camera]
        add("camera", [word], word, f"Does the camera {word}?")
    return normalize_questions(out, kind=kind, source=source, model=OFFLINE_DECOMPOSER, unparsed=plan.unparsed)


def _name(word: str) -> str | None:
    return OBJECT_WORDS.get(word.strip().lower())


def answer(question: Question, reading: Reading, height: int) -> float | None:
    """P(yes) for one question read off one image: 1.0 or 0.0; None when pixels cannot tell (a word outside
    the vocabulary, a video-only question on a still)."""
    args = [a.strip().lower() for a in question.args]
    seen = reading.objects
    if question.category == "entity" and args:
        name = _name(args[0])
        return None if name is None else float(any(o.name == name for o in seen))
    if question.category == "count" and len(args) >= 2:
        name = _name(args[0])
        want = NUMBERS.get(args[1]) if not args[1].isdigit() else int(args[1])
        if name is None or want is None:
            return None
        return float(sum(o.name == name for o in seen) == want)
    if question.category == "attribute" and len(args) >= 2:
        name, colour = _name(args[0]), COLOUR_ALIASES.get(args[1], args[1])
        if name is None or colour not in COLOURS:
            return None
        mine = [o for o in seen if o.name == name]
        return float(bool(mine) and all(o.colour == colour for o in mine))
    if question.category == "relation" and len(args) >= 3:
        first, second = _name(args[0]), _name(args[2])
        relation = dict(RELATIONS).get(args[1])
        if first is None or second is None or relation is None:
            return None
        return float(_related(seen, first, relation, second, height))
    if question.category == "text" and args:
        return float(text_matches(reading, question.args[0].strip().strip('"')))
    if question.category == "style" and args:
        effect = STYLES.get(args[0])
        if effect == "monochrome":
            return float(reading.saturation < 3.0)
        if effect == "soft":
            return float(reading.softness >= 3.0)
        return None
    return None


def _related(seen: list[Seen], first: str, relation: str, second: str, height: int) -> bool:
    row = 0.15 * height
    for a in (o for o in seen if o.name == first):
        for b in (o for o in seen if o.name == second):
            same_row = abs(a.cy - b.cy) < row
            if relation == "left of" and same_row and a.cx < b.cx:
                return True
            if relation == "right of" and same_row and a.cx > b.cx:
                return True
            if relation == "above" and a.cy < b.cy - row:
                return True
            if relation == "below" and a.cy > b.cy + row:
                return True
            if relation == "next to" and same_row:
                lo, hi = sorted((a.cx, b.cx))
                if not any(lo < o.cx < hi and abs(o.cy - a.cy) < row for o in seen):
                    return True
    return False
