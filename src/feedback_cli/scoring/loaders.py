"""One model cache per process, keyed by checkpoint: every model loads once and is shared.

CLIP ViT-L/14 (`settings.clip_model`) serves clip-score (docs/scorers.md §I.2), aesthetic (§I.3) and VBench's
aesthetic_quality (§V.7) from a single load. Models go to the best device (`settings.device`: auto picks
cuda, then mps, then cpu) and run in fp16 on a GPU, fp32 on the CPU; outputs come back as float32 on the CPU.

`load_count()` / `load_counts()` tell how many model loads happened (tests and the benchmark read them);
`clear()` forgets everything. Image embeddings are also memoised per (checkpoint, file, mtime) so two scorers
that embed the same images with the same model (clip-score and aesthetic) run the forward pass once, and
the last 32 decoded images are kept so every scorer of one batch decodes each file once.

Every checkpoint is a setting taking a hub id or a local directory and is loaded with `from_pretrained(setting)`,
so real weights and the tests' tiny models take the same code path.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import torch
from torch import nn

from feedback_cli.errors import ScorerUnavailable

if TYPE_CHECKING:
    from feedback_cli.config import Settings

T = TypeVar("T")

_lock = threading.Lock()
_key_locks: dict[tuple[str, str, str], threading.Lock] = {}
_models: dict[tuple[str, str, str], Any] = {}
_loads: Counter[str] = Counter()
_features: OrderedDict[tuple[Any, ...], torch.Tensor] = OrderedDict()
_FEATURE_CACHE_SIZE = 4096
_decoded: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
_DECODED_CACHE_SIZE = 32


# --------------------------------------------------------------------------- device


def resolve_device(setting: str = "auto") -> torch.device:
    """`auto` -> cuda, then mps, then cpu; anything else is taken as a torch device string."""
    if setting in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(setting)
    except RuntimeError as exc:
        raise ScorerUnavailable(f"FBLOOP_DEVICE={setting!r} is not a torch device: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ScorerUnavailable(f"FBLOOP_DEVICE={setting} but CUDA is not available", hint="FBLOOP_DEVICE=auto")
    return device


def model_dtype(device: torch.device) -> torch.dtype:
    """fp16 on a GPU, fp32 elsewhere."""
    return torch.float16 if device.type in ("cuda", "mps") else torch.float32


# --------------------------------------------------------------------------- cache


def cached(kind: str, ref: str, device: torch.device, loader: Callable[[], T]) -> T:
    """The model for (kind, checkpoint, device), loading it with `loader` the first time only."""
    key = (kind, ref, str(device))
    with _lock:
        if key in _models:
            return _models[key]
        key_lock = _key_locks.setdefault(key, threading.Lock())
    with key_lock:
        with _lock:
            if key in _models:
                return _models[key]
        model = loader()
        with _lock:
            _models[key] = model
            _loads[f"{kind}:{ref}"] += 1
        return model


def load_count(ref: str | None = None) -> int:
    """Model loads so far: all of them, or those of one checkpoint (hub id / path)."""
    with _lock:
        if ref is None:
            return sum(_loads.values())
        return sum(n for key, n in _loads.items() if key.split(":", 1)[1] == ref)


def load_counts() -> dict[str, int]:
    """`{"kind:checkpoint": loads}`."""
    with _lock:
        return dict(_loads)


def clear() -> None:
    """Forget every cached model, the load counters and the feature cache."""
    with _lock:
        _models.clear()
        _key_locks.clear()
        _loads.clear()
        _features.clear()
        _decoded.clear()


def clear_features() -> None:
    """Forget memoised embeddings and decoded images only (models stay loaded)."""
    with _lock:
        _features.clear()
        _decoded.clear()


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Some loaders print (pyiqa); keep stdout clean for `--json`."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def _unavailable(scorer: str, what: str, ref: str, exc: BaseException) -> ScorerUnavailable:
    return ScorerUnavailable(
        f"{scorer}: cannot load {what} from {ref!r}: {str(exc).splitlines()[0] if str(exc) else exc!r}",
        hint=f"fbloop models download {scorer}",
    )


# --------------------------------------------------------------------------- CLIP


def pooled(output: Any) -> torch.Tensor:
    """transformers 5 returns an output object from get_*_features (projection in pooler_output); 4.x a tensor."""
    if isinstance(output, torch.Tensor):
        return output
    value = getattr(output, "pooler_output", None)
    if value is None:
        value = getattr(output, "image_embeds", None)
    if value is None:
        value = getattr(output, "text_embeds", None)
    if value is None:
        raise TypeError(f"cannot find the projected embedding in {type(output).__name__}")
    return value


@dataclass
class Loaded:
    """A model on its device with its dtype."""

    model: nn.Module
    device: torch.device
    dtype: torch.dtype


def clip_model(ref: str, settings: Settings, scorer: str) -> Loaded:
    """transformers `CLIPModel.from_pretrained(ref)`, eval mode, on the scoring device."""
    device = resolve_device(settings.device)

    def load() -> Loaded:
        from transformers import CLIPModel

        try:
            model = CLIPModel.from_pretrained(ref)
        except (OSError, ValueError) as exc:
            raise _unavailable(scorer, "the CLIP model", ref, exc) from exc
        dtype = model_dtype(device)
        model.to(device=device, dtype=dtype).eval()
        return Loaded(model, device, dtype)

    return cached("clip", ref, device, load)


def _cached_cpu(kind: str, ref: str, load: Callable[[], T]) -> T:
    """A small CPU-side object (processor, tokenizer) cached by (kind, ref); not counted as a model load."""
    key = (kind, ref, "cpu")
    with _lock:
        if key in _models:
            return _models[key]
    value = load()
    with _lock:
        _models.setdefault(key, value)
        return _models[key]


def clip_processor(ref: str, scorer: str) -> Any:
    """transformers `CLIPProcessor.from_pretrained(ref)`; used for its tokenizer only (see clip_image_processor)."""

    def load() -> Any:
        from transformers import CLIPProcessor

        try:
            return CLIPProcessor.from_pretrained(ref)
        except (OSError, ValueError, TypeError) as exc:
            raise _unavailable(scorer, "the CLIP processor", ref, exc) from exc

    return _cached_cpu("processor", ref, load)


def clip_image_processor(ref: str, scorer: str) -> Any:
    """The checkpoint's CLIP image processor on the PIL backend (docs/scorers.md "Preprocessing").

    PickScore's own code, torchmetrics and the LAION predictor resize with PIL (bicubic). transformers 5's
    `CLIPProcessor.from_pretrained` picks the torchvision backend instead, whose resize differs by up to one grey
    level and moved CLIP-Score by up to 0.0094; `CLIPImageProcessorPil` (transformers 5) and `CLIPImageProcessor`
    (transformers 4, where it is the PIL implementation) are the references' path.
    """

    def load() -> Any:
        try:
            from transformers import CLIPImageProcessorPil as PilImageProcessor
        except ImportError:  # transformers 4: the plain class is the PIL one
            from transformers import CLIPImageProcessor as PilImageProcessor
        try:
            return PilImageProcessor.from_pretrained(ref)
        except (OSError, ValueError, TypeError) as exc:
            raise _unavailable(scorer, "the CLIP image processor", ref, exc) from exc

    return _cached_cpu("image-processor-pil", ref, load)


#: OpenAI CLIP's normalisation constants (clip/clip.py `_transform`, also open_clip's OPENAI_DATASET_MEAN/STD)
OPENAI_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def openai_clip_transform(n_px: int) -> Callable[[Any], torch.Tensor]:
    """OpenAI `clip.load`'s preprocess (`clip/clip.py::_transform`) on an RGB PIL image, as the LAION aesthetic
    predictor runs it: torchvision Resize(n_px, bicubic) on the PIL image (a PIL resize), CenterCrop(n_px)
    (offsets rounded, where transformers' processor floors them), ToTensor, Normalize."""
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    return Compose(
        [
            Resize(n_px, interpolation=InterpolationMode.BICUBIC),
            CenterCrop(n_px),
            ToTensor(),
            Normalize(OPENAI_CLIP_MEAN, OPENAI_CLIP_STD),
        ]
    )


def _resized(width: int, height: int, shortest: int) -> tuple[int, int]:
    """(w, h) after resizing the shortest edge to `shortest`: the rule torchvision and transformers share."""
    if width <= height:
        return shortest, int(shortest * height / width)
    return int(shortest * width / height), shortest


def _crop_origin(width: int, height: int, crop: int, rounding: str) -> tuple[int, int]:
    """(left, top) of a centred crop: transformers floors the offset, torchvision rounds it (half to even)."""
    if rounding == "floor":
        return (width - crop) // 2, (height - crop) // 2
    return round((width - crop) / 2.0), round((height - crop) / 2.0)


def _processor_is_openai_transform(processor: Any, n_px: int) -> bool:
    """True when `processor` does clip.load's resize, crop and normalisation (crop rounding aside)."""

    def get(name: str) -> Any:
        return getattr(processor, name, None)

    size, crop = get("size"), get("crop_size")
    shortest = size.get("shortest_edge") if isinstance(size, dict) else getattr(size, "shortest_edge", None)
    crop_hw = (
        (crop.get("height"), crop.get("width"))
        if isinstance(crop, dict)
        else (getattr(crop, "height", None), getattr(crop, "width", None))
    )
    mean, std = get("image_mean"), get("image_std")
    return (
        bool(get("do_resize") and get("do_center_crop") and get("do_rescale") and get("do_normalize"))
        and shortest == n_px
        and crop_hw == (n_px, n_px)
        and int(get("resample") or 0) == 3  # PIL bicubic
        and abs(float(get("rescale_factor") or 0) - 1 / 255) < 1e-12
        and mean is not None
        and std is not None
        and all(abs(a - b) < 1e-7 for a, b in zip(mean, OPENAI_CLIP_MEAN, strict=True))
        and all(abs(a - b) < 1e-7 for a, b in zip(std, OPENAI_CLIP_STD, strict=True))
    )


def _open_rgb(path: Path, file_key: tuple[str, int, int]) -> Any:
    """The image as RGB PIL, decoded once for every scorer that embeds it (a small LRU by file identity)."""
    from PIL import Image

    key = ("decoded", *file_key)
    with _lock:
        hit = _decoded.get(key)
        if hit is not None:
            _decoded.move_to_end(key)
            return hit
    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except (OSError, ValueError) as exc:
        from feedback_cli.errors import InputError

        raise InputError(f"cannot read image {path}: {exc}") from exc
    with _lock:
        _decoded[key] = rgb
        while len(_decoded) > _DECODED_CACHE_SIZE:
            _decoded.popitem(last=False)
    return rgb


def _file_key(path: Path | str) -> tuple[str, int, int]:
    """(absolute path, mtime, size): cheap (one stat, no realpath) and changes when the file does."""
    name = os.path.abspath(path)
    try:
        st = os.stat(name)
    except OSError as exc:
        from feedback_cli.errors import InputError

        raise InputError(f"cannot read image {path}: {exc}") from exc
    return (name, st.st_mtime_ns, st.st_size)


def _remember(key: tuple[Any, ...], value: torch.Tensor) -> None:
    with _lock:
        _features[key] = value
        _features.move_to_end(key)
        while len(_features) > _FEATURE_CACHE_SIZE:
            _features.popitem(last=False)


def _recall(key: tuple[Any, ...]) -> torch.Tensor | None:
    with _lock:
        value = _features.get(key)
        if value is not None:
            _features.move_to_end(key)
        return value


def clip_image_features(
    model_ref: str,
    processor_ref: str,
    images: Sequence[Path],
    settings: Settings,
    scorer: str,
    preprocess: Literal["processor", "openai-clip"] = "processor",
) -> torch.Tensor:
    """Projected (not yet normalised) CLIP image embeddings, (N, D) float32 on the CPU, batched.

    `preprocess="processor"`: the checkpoint's image processor on the PIL backend (`clip_image_processor`), what
    PickScore's code and torchmetrics feed the model. `"openai-clip"`: OpenAI clip's own preprocess
    (`openai_clip_transform`), what the LAION aesthetic predictor feeds it. The two differ only in how a centred crop
    with an odd margin is rounded; where they agree for an image (most sizes, and every square image) the
    embedding is computed once and shared. Memoised per (model, preprocessing, file, mtime, size).
    """
    file_keys = [_file_key(p) for p in images]
    processor_id = f"pil:{processor_ref}"
    preprocess_ids = [processor_id] * len(images)
    transform: Callable[[Any], torch.Tensor] | None = None
    if preprocess == "openai-clip":
        loaded = clip_model(model_ref, settings, scorer)
        n_px = int(loaded.model.config.vision_config.image_size)
        transform = openai_clip_transform(n_px)
        same = _processor_is_openai_transform(clip_image_processor(processor_ref, scorer), n_px)
        for i, path in enumerate(images):
            w, h = _resized(*_open_rgb(Path(path), file_keys[i]).size, n_px)
            if not (same and _crop_origin(w, h, n_px, "floor") == _crop_origin(w, h, n_px, "round")):
                preprocess_ids[i] = f"openai-clip:{n_px}"
    keys = [("img", model_ref, pid, *fk) for pid, fk in zip(preprocess_ids, file_keys, strict=True)]
    out: list[torch.Tensor | None] = [_recall(k) for k in keys]
    todo = [i for i, v in enumerate(out) if v is None]
    if todo:
        loaded = clip_model(model_ref, settings, scorer)
        processor = clip_image_processor(processor_ref, scorer)
        batch = max(1, settings.score_batch_size)
        for start in range(0, len(todo), batch):
            idx = todo[start : start + batch]
            pil = [_open_rgb(Path(images[i]), file_keys[i]) for i in idx]
            rows: list[torch.Tensor] = []
            for i, img in zip(idx, pil, strict=True):
                if preprocess_ids[i] == processor_id:
                    rows.append(torch.as_tensor(processor(images=[img], return_tensors="pt")["pixel_values"][0]))
                else:
                    assert transform is not None
                    rows.append(transform(img))
            pixels = torch.stack(rows).to(device=loaded.device, dtype=loaded.dtype)
            with torch.inference_mode():
                feats = pooled(loaded.model.get_image_features(pixel_values=pixels)).float().cpu()
            for j, i in enumerate(idx):
                out[i] = feats[j]
                _remember(keys[i], feats[j])
    return torch.stack([v for v in out if v is not None])


#: CLIP's text context: 77 tokens including the start- and end-of-text markers
CLIP_CONTEXT = 77


def truncation_note(token_count: int, context: int = CLIP_CONTEXT) -> str | None:
    """The note a CLIP-text scorer records when the prompt did not fit its `context` tokens, else None.

    Every CLIP text path in fbloop keeps the end-of-text token when it cuts (the CLIP tokenizer's own
    truncation, what PickScore, OpenAI clip and open_clip do); torchmetrics cuts it off instead.
    """
    if token_count <= context:
        return None
    return (
        f"prompt truncated for CLIP: {token_count} tokens with the start/end markers, the text encoder read "
        f"{context} (the first {context - 2} prompt tokens and the end-of-text token)"
    )


def clip_token_count(processor_ref: str, text: str, scorer: str) -> int:
    """How many tokens the CLIP tokenizer of `processor_ref` makes of `text`, start/end markers included, uncut."""
    tokenizer = clip_processor(processor_ref, scorer).tokenizer
    return len(tokenizer(text, truncation=False, verbose=False)["input_ids"])


def clip_text_context(model_ref: str, settings: Settings, scorer: str) -> int:
    """The text context the model reads: 77, or less if its position embeddings are fewer."""
    loaded = clip_model(model_ref, settings, scorer)
    return min(CLIP_CONTEXT, int(getattr(loaded.model.config.text_config, "max_position_embeddings", CLIP_CONTEXT)))


def clip_text_features(
    model_ref: str, processor_ref: str, texts: Sequence[str], settings: Settings, scorer: str
) -> torch.Tensor:
    """Projected CLIP text embeddings, (N, D) float32 on the CPU; padded and truncated to 77 tokens.

    Truncation is the tokenizer's: the first 75 prompt tokens and then the end-of-text token, whose position
    CLIP pools. torchmetrics instead slices the ids after tokenising and loses that token (docs/scorers.md §I.2).
    """
    keys = [("txt", model_ref, processor_ref, t) for t in texts]
    out: list[torch.Tensor | None] = [_recall(k) for k in keys]
    todo = [i for i, v in enumerate(out) if v is None]
    if todo:
        loaded = clip_model(model_ref, settings, scorer)
        processor = clip_processor(processor_ref, scorer)
        inputs = processor(
            text=[texts[i] for i in todo],
            padding=True,
            truncation=True,
            max_length=clip_text_context(model_ref, settings, scorer),
            return_tensors="pt",
        )
        inputs = {k: v.to(loaded.device) for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        with torch.inference_mode():
            feats = pooled(loaded.model.get_text_features(**inputs)).float().cpu()
        for j, i in enumerate(todo):
            out[i] = feats[j]
            _remember(keys[i], feats[j])
    return torch.stack([v for v in out if v is not None])


def clip_frame_features(model_ref: str, pixels: torch.Tensor, settings: Settings, scorer: str) -> torch.Tensor:
    """CLIP image embeddings of already-transformed frames (N, 3, H, W), batched, float32 on the CPU."""
    loaded = clip_model(model_ref, settings, scorer)
    batch = max(1, settings.score_batch_size)
    chunks = []
    with torch.inference_mode():
        for start in range(0, pixels.shape[0], batch):
            x = pixels[start : start + batch].to(device=loaded.device, dtype=loaded.dtype)
            chunks.append(pooled(loaded.model.get_image_features(pixel_values=x)).float().cpu())
    return torch.cat(chunks) if chunks else torch.empty(0)


# --------------------------------------------------------------------------- heads


class AestheticMLP(nn.Module):
    """The improved aesthetic predictor's head (docs/scorers.md §I.3): five Linear layers, ReLUs commented out.

    Layer sizes come from the state dict (768->1024->128->64->16->1 for the real file), so the tests'
    tiny heads load through the same class.
    """

    def __init__(self, sizes: Sequence[int]) -> None:
        super().__init__()
        d0, d1, d2, d3, d4 = sizes
        self.layers = nn.Sequential(
            nn.Linear(d0, d1),
            nn.Dropout(0.2),
            nn.Linear(d1, d2),
            nn.Dropout(0.2),
            nn.Linear(d2, d3),
            nn.Dropout(0.1),
            nn.Linear(d3, d4),
            nn.Linear(d4, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _state_dict(path: Path, scorer: str) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a pickle that is not a plain state dict, a truncated file, ...
        raise ScorerUnavailable(f"{scorer}: cannot read weights {path}: {exc}") from exc
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ScorerUnavailable(f"{scorer}: {path} is not a state dict")
    return state


def aesthetic_mlp(path: Path, settings: Settings, scorer: str) -> Loaded:
    """The improved aesthetic MLP from a `.pth` state dict (keys layers.0/2/4/6/7), fp32 on the device."""
    device = resolve_device(settings.device)

    def load() -> Loaded:
        state = _state_dict(path, scorer)
        try:
            sizes = [state[f"layers.{i}.weight"].shape[1] for i in (0, 2, 4, 6, 7)]
            head = AestheticMLP(sizes)
            head.load_state_dict(state)
        except (KeyError, RuntimeError) as exc:
            raise ScorerUnavailable(f"{scorer}: {path} is not the aesthetic MLP's state dict: {exc}") from exc
        head.to(device).eval()
        return Loaded(head, device, torch.float32)

    return cached("aesthetic-mlp", str(path), device, load)


def linear_head(path: Path, settings: Settings, scorer: str) -> Loaded:
    """VBench's aesthetic V1 head: `nn.Linear(768, 1)` from a state dict (docs/scorers.md §V.7)."""
    device = resolve_device(settings.device)

    def load() -> Loaded:
        state = _state_dict(path, scorer)
        weight = state.get("weight")
        if weight is None or weight.ndim != 2 or weight.shape[0] != 1:
            raise ScorerUnavailable(f"{scorer}: {path} is not a Linear(d, 1) state dict")
        head = nn.Linear(weight.shape[1], 1)
        head.load_state_dict(state)
        head.to(device).eval()
        return Loaded(head, device, torch.float32)

    return cached("linear-head", str(path), device, load)


# --------------------------------------------------------------------------- video models


def dino_model(ref: str, settings: Settings, scorer: str) -> Loaded:
    """DINO ViT-B/16 as transformers `ViTModel.from_pretrained(ref)` (facebook/dino-vitb16), no pooler."""
    device = resolve_device(settings.device)

    def load() -> Loaded:
        from transformers import ViTModel

        try:
            model = ViTModel.from_pretrained(ref, add_pooling_layer=False)
        except (OSError, ValueError) as exc:
            raise _unavailable(scorer, "the DINO model", ref, exc) from exc
        dtype = model_dtype(device)
        model.to(device=device, dtype=dtype).eval()
        return Loaded(model, device, dtype)

    return cached("dino", ref, device, load)


def raft_model(path: Path, settings: Settings, scorer: str) -> Loaded:
    """torchvision `raft_large()` with a state dict from `path` (C_T_V1 by default, docs/scorers.md §V.6a), fp32."""
    device = resolve_device(settings.device)

    def load() -> Loaded:
        from torchvision.models.optical_flow import raft_large

        state = _state_dict(path, scorer)
        if any(k.startswith("module.") or k.startswith("fnet.") for k in state):
            raise ScorerUnavailable(
                f"{scorer}: {path} looks like the princeton-vl RAFT checkpoint; fbloop needs torchvision's "
                "raft_large weights (C_T_V1, the same training)",
                hint="unset FBLOOP_RAFT_WEIGHTS and run `fbloop models download dynamic_degree`",
            )
        model = raft_large(weights=None, progress=False)
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ScorerUnavailable(f"{scorer}: {path} is not a raft_large state dict: {exc}") from exc
        model.to(device).eval()
        return Loaded(model, device, torch.float32)

    return cached("raft-large", str(path), device, load)


def musiq_model(path: Path, settings: Settings, scorer: str) -> Loaded:
    """pyiqa's `MUSIQ(pretrained_model_path=path)` as VBench builds it (docs/scorers.md §V.8), fp32."""
    device = resolve_device(settings.device)

    def load() -> Loaded:
        try:
            with stdout_to_stderr():
                from pyiqa.archs.musiq_arch import MUSIQ
        except ImportError as exc:
            raise ScorerUnavailable(
                f"{scorer}: pyiqa is not installed ({exc}); VBench's imaging_quality uses its MUSIQ",
                hint="pip install pyiqa, or FBLOOP_VBENCH_PYTHON=<python of a VBench env> for the official backend",
            ) from exc
        try:
            with stdout_to_stderr():
                model = MUSIQ(pretrained_model_path=str(path))
        except (RuntimeError, KeyError, OSError) as exc:
            raise ScorerUnavailable(f"{scorer}: {path} is not a MUSIQ checkpoint: {exc}") from exc
        model.to(device)
        model.training = False  # what VBench sets (the top-level flag selects MUSIQ's inference branch)
        model.eval()
        return Loaded(model, device, torch.float32)

    return cached("musiq", str(path), device, load)
