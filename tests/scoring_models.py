"""Tiny randomly initialised models of every scorer architecture, saved like the real checkpoints.

Nothing is downloaded: the CLIP tokenizer is a byte-level BPE vocabulary with no merges (the 256 byte symbols,
their `</w>` forms and the two special tokens), the image processor a 32 px CLIPImageProcessor. Models are
saved with `save_pretrained` / `torch.save` into a session temp dir and the Settings point at those paths, so
every scorer runs through its real loading code.

Import the fixtures into a test module with
`from tests.scoring_models import tiny_models, tiny_settings  # noqa: F401`.
The builders are plain functions too (bench/scoring.py uses them).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

CLIP_IMAGE_SIZE = 32
PROJECTION_DIM = 16


def _byte_vocab() -> dict[str, int]:
    from tokenizers.pre_tokenizers import ByteLevel

    symbols = sorted(ByteLevel.alphabet())
    vocab: dict[str, int] = {}
    for s in symbols:
        vocab[s] = len(vocab)
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab


def clip_processor(image_size: int = CLIP_IMAGE_SIZE):
    """An offline CLIPProcessor: byte-level BPE tokenizer without merges + a small CLIPImageProcessor."""
    from transformers import CLIPImageProcessor, CLIPProcessor, CLIPTokenizer

    tokenizer = CLIPTokenizer(vocab=_byte_vocab(), merges=[])
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    return CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer)


def build_clip(folder: Path, seed: int, *, with_processor: bool = True, logit_scale: float = 2.6592) -> Path:
    """A 2-layer CLIPModel (hidden 32, 32 px images, projection 16) saved with save_pretrained."""
    from transformers import CLIPConfig, CLIPModel

    vocab_size = len(_byte_vocab())
    config = CLIPConfig(
        text_config={
            "vocab_size": vocab_size,
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 77,
            "bos_token_id": vocab_size - 2,
            "eos_token_id": vocab_size - 1,
            "pad_token_id": vocab_size - 1,
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": CLIP_IMAGE_SIZE,
            "patch_size": 8,
        },
        projection_dim=PROJECTION_DIM,
        logit_scale_init_value=logit_scale,
    )
    torch.manual_seed(seed)
    model = CLIPModel(config).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    if with_processor:
        clip_processor().save_pretrained(folder)
    return folder


def build_processor(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    clip_processor().save_pretrained(folder)
    return folder


def build_dino(folder: Path, seed: int = 3) -> Path:
    """A 2-layer ViTModel (DINO ViT-B/16's architecture family), 32 px, patch 8, no pooler."""
    from transformers import ViTConfig, ViTModel

    config = ViTConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
    )
    torch.manual_seed(seed)
    model = ViTModel(config, add_pooling_layer=False).eval()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    return folder


def build_aesthetic_mlp(path: Path, in_dim: int = PROJECTION_DIM, seed: int = 4) -> Path:
    """A state dict with the improved aesthetic MLP's keys (layers.0/2/4/6/7) and small sizes."""
    sizes = [in_dim, 24, 12, 8, 4, 1]
    torch.manual_seed(seed)
    state = {}
    for key, (a, b) in zip((0, 2, 4, 6, 7), itertools.pairwise(sizes), strict=True):
        layer = torch.nn.Linear(a, b)
        state[f"layers.{key}.weight"] = layer.weight.detach().clone()
        state[f"layers.{key}.bias"] = layer.bias.detach().clone() + 5.0 / (key + 1)
    torch.save(state, path)
    return path


def build_linear_head(path: Path, in_dim: int = PROJECTION_DIM, seed: int = 5) -> Path:
    """VBench's aesthetic V1 head layout: nn.Linear(d, 1) state dict (bias shifted to a 1-10-like rating)."""
    torch.manual_seed(seed)
    layer = torch.nn.Linear(in_dim, 1)
    with torch.no_grad():
        layer.bias += 5.0
    torch.save(layer.state_dict(), path)
    return path


def build_raft(path: Path, mode: str = "random", flow_px: float = 0.1) -> Path:
    """torchvision raft_large(weights=None) state dict.

    mode "random": as initialised. "static": the flow head's last conv zeroed, so every update adds nothing
    and the flow is exactly 0. "moving": same but with bias (flow_px, 0), so after 20 updates at 1/8 resolution
    the upsampled flow is 20 x 8 x flow_px pixels everywhere.
    """
    from torchvision.models.optical_flow import raft_large

    torch.manual_seed(6)
    model = raft_large(weights=None, progress=False)
    if mode in ("static", "moving"):
        conv = model.update_block.flow_head.conv2
        with torch.no_grad():
            conv.weight.zero_()
            conv.bias.zero_()
            if mode == "moving":
                conv.bias[0] = flow_px
    torch.save(model.state_dict(), path)
    return path


def build_musiq(path: Path) -> Path:
    """pyiqa's MUSIQ with VBench's (default) architecture, random weights, saved as a plain state dict."""
    from pyiqa.archs.musiq_arch import MUSIQ

    torch.manual_seed(7)
    model = MUSIQ(pretrained=False)
    torch.save(model.state_dict(), path)
    return path


def have_pyiqa() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyiqa") is not None


# --------------------------------------------------------------------------- media


def make_images(folder: Path, n: int, size: tuple[int, int] = (48, 40), seed: int = 0) -> list[Path]:
    """n distinct RGB PNGs (smooth gradients plus noise, different per image)."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    for i in range(n):
        base = np.stack([(xx * (3 + i)) % 256, (yy * (5 + 2 * i)) % 256, ((xx + yy) * (7 + i)) % 256], axis=-1).astype(
            np.float64
        )
        noise = rng.normal(0, 20, size=base.shape)
        img = np.clip(base + noise, 0, 255).astype(np.uint8)
        path = folder / f"image_{i:02d}.png"
        Image.fromarray(img).save(path)
        paths.append(path)
    return paths


def texture(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture (blurred noise), uint8."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, size=(height // 4 + 1, width // 4 + 1, 3)).astype(np.uint8)
    img = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(img, dtype=np.uint8)


def translating_frames(n: int, height: int, width: int, shift_px: int, seed: int = 0) -> np.ndarray:
    """n frames of one texture moved right by shift_px per frame (wrapping): known motion of shift_px."""
    tex = texture(height, width + n * abs(shift_px) + 1, seed)
    frames = []
    for t in range(n):
        x0 = (n * abs(shift_px)) - t * shift_px if shift_px >= 0 else t * -shift_px
        frames.append(tex[:, x0 : x0 + width])
    return np.stack(frames)


def write_video(path: Path, frames: np.ndarray, fps: int = 8, lossless: bool = True) -> Path:
    """Encode (T, H, W, 3) uint8 frames as H.264 mp4 with PyAV (qp 0 when lossless)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width = frames.shape[2]
        stream.height = frames.shape[1]
        stream.pix_fmt = "yuv444p" if lossless else "yuv420p"
        if lossless:
            stream.options = {"qp": "0", "preset": "ultrafast"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


# --------------------------------------------------------------------------- the set


@dataclass(frozen=True)
class TinyModels:
    root: Path
    clip_l: Path
    clip_b32: Path
    pickscore_model: Path
    pickscore_processor: Path
    dino: Path
    aesthetic_head: Path
    vbench_head: Path
    raft_random: Path
    raft_static: Path
    raft_moving: Path
    musiq: Path | None

    def settings_kwargs(self) -> dict[str, object]:
        return {
            "clip_model": str(self.clip_l),
            "pickscore_model": str(self.pickscore_model),
            "pickscore_processor": str(self.pickscore_processor),
            "aesthetic_head": str(self.aesthetic_head),
            "dino_model": str(self.dino),
            "vbench_clip_b32_model": str(self.clip_b32),
            "vbench_aesthetic_head": str(self.vbench_head),
            "raft_weights": str(self.raft_random),
            "musiq_weights": str(self.musiq) if self.musiq else None,
            "device": "cpu",
            "weights_dir": str(self.root / "weights"),
        }

    def env(self) -> dict[str, str]:
        """The same as FBLOOP_* environment variables (for CLI tests)."""
        return {f"FBLOOP_{k.upper()}": str(v) for k, v in self.settings_kwargs().items() if v is not None}


def build_all(root: Path, with_musiq: bool = True) -> TinyModels:
    root.mkdir(parents=True, exist_ok=True)
    musiq = build_musiq(root / "musiq_spaq_tiny.pth") if with_musiq and have_pyiqa() else None
    return TinyModels(
        root=root,
        clip_l=build_clip(root / "clip-l", seed=13),  # mixed-sign cosines: the clamp matters
        clip_b32=build_clip(root / "clip-b32", seed=2),
        pickscore_model=build_clip(root / "pickscore", seed=8, with_processor=False, logit_scale=4.6052),
        pickscore_processor=build_processor(root / "pickscore-processor"),
        dino=build_dino(root / "dino"),
        aesthetic_head=build_aesthetic_mlp(root / "aesthetic_mlp.pth"),
        vbench_head=build_linear_head(root / "aesthetic_v1_linear.pth"),
        raft_random=build_raft(root / "raft_random.pth", "random"),
        raft_static=build_raft(root / "raft_static.pth", "static"),
        raft_moving=build_raft(root / "raft_moving.pth", "moving"),
        musiq=musiq,
    )


def make_settings(models: TinyModels, **overrides: object):
    from feedback_cli.config import Settings

    kwargs = {**models.settings_kwargs(), **overrides}
    return Settings(_env_file=None, **kwargs)  # type: ignore[call-arg]


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> TinyModels:
    return build_all(tmp_path_factory.mktemp("tiny_models"))


@pytest.fixture
def tiny_settings(tiny_models: TinyModels, monkeypatch: pytest.MonkeyPatch):
    """Settings pointing at the tiny models, with a clean model cache; HF_HUB_OFFLINE is unset."""
    from feedback_cli.scoring import loaders as models
    from feedback_cli.scoring import vbench_official, video_io

    for name in list(__import__("os").environ):
        if name.startswith("FBLOOP_"):
            monkeypatch.delenv(name)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    models.clear()
    video_io.clear_cache()
    vbench_official.clear_cache()
    return make_settings(tiny_models)


@pytest.fixture
def fresh_cache() -> Iterator[None]:
    from feedback_cli.scoring import loaders as models

    models.clear()
    yield
    models.clear()


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def as_paths(items: Sequence[str | Path]) -> list[Path]:
    return [Path(p) for p in items]
