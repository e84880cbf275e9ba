"""HPSv2.1 (docs/scorers.md §I.5): the HPSv2 authors' `hpsv2.score()` (tgxs002/HPSv2, `hpsv2/img_score.py`).

Model: open_clip's `ViT-H-14` (`open_clip_torch`; the authors vendor open_clip 2.16) with the HPS v2.1 fine-tune,
`HPS_v2.1_compressed.pt` from HF `xswu/HPSv2`, whose `state_dict` is the whole model. The checkpoint is
its option `checkpoint` (`FBLOOP_HPSV2_CHECKPOINT`, a local file) or, by default, fbloop's weights folder,
where `fbloop models download hpsv2` puts it. Its option `architecture` (`FBLOOP_HPSV2_ARCHITECTURE`) names the
open_clip architecture
(an open_clip model name, or the path of an open_clip model-config JSON; the tests use a tiny one).

Raw value, as `score()` computes it: image and text features from the model's forward pass (open_clip's CLIP
L2-normalises both), score = diag(image_features @ text_features.T), a cosine, no logit scale. Images go through
the authors' validation transform (`hpsv2/src/open_clip/transform.py::image_transform`): ToTensor, then
Resize(224, bicubic) on the float tensor (antialiased, torchvision's default since 0.17), CenterCrop(224), OpenAI
CLIP mean/std. Text through open_clip's tokenizer: 77 tokens, the end-of-text token kept when cut (noted).

Deviations: fp32 on the CPU and fp16 on a GPU where the authors use AMP; RGBA images are converted to RGB (the
authors keep the alpha channel, which the 3-channel model cannot take); the checkpoint is loaded once, not on
every call. Typical raw values for v2.1: about 0.28-0.33.

0-100: clamp((raw - 0.20) / (0.35 - 0.20), 0, 1) x 100; anchors tunable via
`FBLOOP_SCORE_ANCHORS='{"hpsv2": [0.2, 0.35]}'`.

Only the standard library and feedback_cli are imported at module level: preflight and `fbloop models` read the
class's declarations without importing torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from feedback_cli.errors import ScorerUnavailable
from feedback_cli.scoring.anchors import anchored, anchors_for
from feedback_cli.scoring.base import TORCH_STACK, DefaultSet, ImageScorer, NotedValue, ScorerOptions
from feedback_cli.scoring.requirements import Requirement, option_url
from feedback_cli.scoring.weights import UrlFile, resolve

if TYPE_CHECKING:
    from feedback_cli.config import Settings

#: HF `xswu/HPSv2`, file `HPS_v2.1_compressed.pt` (`hpsv2/utils.py::hps_version_map["v2.1"]`); no published digest
CHECKPOINT = UrlFile(
    key="hpsv2.1",
    label="HPS v2.1 (open_clip ViT-H-14 fine-tune)",
    url="https://huggingface.co/xswu/HPSv2/resolve/main/HPS_v2.1_compressed.pt",
    filename="HPS_v2.1_compressed.pt",
    approx_bytes=1_970_000_000,
)


def _hpsv2_transform(image_size: int) -> Any:
    """The authors' `image_transform(image_size, is_train=False)` for an RGB PIL image."""
    from torchvision.transforms import CenterCrop, Compose, InterpolationMode, Normalize, Resize, ToTensor

    from feedback_cli.scoring.loaders import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    return Compose(
        [
            ToTensor(),
            Resize(image_size, interpolation=InterpolationMode.BICUBIC, antialias=True),
            CenterCrop(image_size),
            Normalize(OPENAI_CLIP_MEAN, OPENAI_CLIP_STD),
        ]
    )


class HPSv2Options(ScorerOptions):
    """FBLOOP_HPSV2_CHECKPOINT, FBLOOP_HPSV2_ARCHITECTURE (or FBLOOP_SCORER_OPTIONS='{"hpsv2": {...}}')."""

    #: a local HPS_v2.1_compressed.pt (default: the download in fbloop's weights folder)
    checkpoint: str | None = None
    #: the open_clip architecture it fine-tunes: a model name or the path of a model-config JSON
    architecture: str = "ViT-H-14"


class HPSv2Scorer(ImageScorer):
    """cos(image, text) on open_clip ViT-H-14 with the HPS v2.1 weights (docs/scorers.md §I.5)."""

    name: ClassVar[str] = "hpsv2"
    raw_range: ClassVar[str] = "about 0.28..0.33 (cosine, HPS v2.1)"
    default_weight: ClassVar[float] = 1.0
    ANCHORS: ClassVar[tuple[float, float]] = (0.20, 0.35)
    #: joins the cloud default only when its weights are here: it is optional and ~2 GB
    default_set: ClassVar[DefaultSet] = "optional"
    needs_modules: ClassVar[tuple[str, ...]] = TORCH_STACK
    Options = HPSv2Options

    @classmethod
    def requirements(cls, settings: Settings) -> list[Requirement]:
        return [
            Requirement(cls.name, "python", "open_clip_torch package", "", "open_clip", package="open_clip_torch"),
            option_url(cls, "checkpoint", CHECKPOINT, settings),
        ]

    @property
    def model_id(self) -> str:
        opts = self.opts
        return f"{opts.architecture} + {opts.checkpoint or CHECKPOINT.filename}"

    @property
    def opts(self) -> HPSv2Options:
        return self.options(self.settings)  # type: ignore[return-value]

    def checkpoint_path(self) -> Path:
        return resolve(CHECKPOINT, self.opts.checkpoint, self.settings, self.name, setting_name="hpsv2_checkpoint")

    def _architecture(self) -> str:
        """The open_clip model name; a config-file path is registered with open_clip under its stem."""
        import open_clip

        arch = self.opts.architecture
        if arch.endswith(".json"):
            path = Path(arch).expanduser()
            if not path.is_file():
                raise ScorerUnavailable(f"hpsv2: FBLOOP_HPSV2_ARCHITECTURE={arch} is not a file")
            open_clip.add_model_config(path)
            return path.stem
        return arch

    def _load(self) -> Any:
        """(model, tokenizer, transform, device, dtype), loaded once per checkpoint and device."""
        from feedback_cli.scoring import loaders

        device = loaders.resolve_device(self.settings.device)
        path = self.checkpoint_path()

        def load() -> Any:
            try:
                import open_clip
            except ImportError as exc:
                raise ScorerUnavailable(
                    f"hpsv2: open_clip cannot be imported ({exc})", hint="pip install open_clip_torch"
                ) from exc
            arch = self._architecture()
            try:
                model = open_clip.create_model(arch, pretrained=None, output_dict=True)
            except RuntimeError as exc:  # an unknown architecture name
                raise ScorerUnavailable(f"hpsv2: open_clip has no model {arch!r}: {exc}") from exc
            state = loaders._state_dict(path, self.name)
            try:
                model.load_state_dict(state)
            except RuntimeError as exc:
                first = str(exc).splitlines()[0:2]
                raise ScorerUnavailable(f"hpsv2: {path} is not an HPSv2 {arch} state dict: {' '.join(first)}") from exc
            dtype = loaders.model_dtype(device)
            model.to(device=device, dtype=dtype).eval()
            image_size = model.visual.image_size
            size = image_size[0] if isinstance(image_size, (tuple, list)) else int(image_size)
            return model, open_clip.get_tokenizer(arch), _hpsv2_transform(size), device, dtype

        return loaders.cached("hpsv2", f"{self.opts.architecture}|{path}", device, load)

    def score(self, images: Sequence[Path], prompt: str) -> list[float]:
        return [v.raw for v in self.score_with_notes(images, prompt)]

    def score_with_notes(self, images: Sequence[Path], prompt: str) -> list[NotedValue]:
        if not images:
            return []
        import torch

        from feedback_cli.scoring import loaders

        model, tokenizer, transform, device, dtype = self._load()
        text = tokenizer([prompt]).to(device)
        batch = max(1, self.settings.score_batch_size)
        values: list[float] = []
        with torch.inference_mode():
            text_features = model.encode_text(text, normalize=True).float()
            for start in range(0, len(images), batch):
                chunk = images[start : start + batch]
                pixels = torch.stack([transform(loaders._open_rgb(Path(p), loaders._file_key(p))) for p in chunk]).to(
                    device=device, dtype=dtype
                )
                image_features = model.encode_image(pixels, normalize=True).float()
                values += (image_features @ text_features.T)[:, 0].double().cpu().tolist()
        context = int(getattr(tokenizer, "context_length", None) or loaders.CLIP_CONTEXT)
        note = loaders.truncation_note(_token_count(tokenizer, prompt), context)
        notes = (note,) if note else ()
        return [NotedValue(float(v), notes) for v in values]

    def normalize(self, raw: float) -> float:
        low, high = anchors_for(self.name, self.ANCHORS, self.settings)
        return anchored(raw, low, high)


def _token_count(tokenizer: Any, text: str) -> int:
    """open_clip SimpleTokenizer tokens of `text` with its start/end markers, uncut (`encode` cleans the text)."""
    return len(tokenizer.encode(text)) + 2
