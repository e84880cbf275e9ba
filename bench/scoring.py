"""Benchmark: the image scorers on 8 images against a bare forward pass of the same models on the same inputs.

    PYTHONPATH=src .venv/bin/python bench/scoring.py            # tiny random models (runs anywhere)
    PYTHONPATH=src .venv/bin/python bench/scoring.py --real     # the real checkpoints, if in the HF cache

Scorers: pickscore, clip-score, aesthetic (vqascore is an API call, not a local model, and is left out).
"scorers" = `registry.image_scorer(name).score(images, prompt)` for each, through the model cache (models
loaded once, outside the timing; the embedding memo is cleared before every repetition so each one redoes all
the work). "bare" = the minimum the same numbers need: decode the images once, run each distinct processor and
model once (CLIP-H for PickScore, CLIP-L for clip-score and the aesthetic head), the formulas on top.
The last three lines are the time per image, the ratio scorers/bare (target <= 1.10) and the model loads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
for entry in (ROOT, ROOT / "src"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

SCORERS = ("pickscore", "clip-score", "aesthetic")
PROMPT = "a watercolour fox in a snowy forest at dawn"


def build_settings(real: bool, root: Path):
    from feedback_cli.config import Settings

    if real:
        from feedback_cli.scoring import preflight, requirements

        settings = Settings(_env_file=None)  # type: ignore[call-arg]
        missing = preflight.problems(SCORERS, settings)
        for name in SCORERS:
            for req in requirements.requirements(name, settings):
                st = requirements.status(req, settings)
                if not st.available:
                    missing.setdefault(name, Exception(f"{req.ref}: {st.state}"))  # type: ignore[arg-type]
        if missing:
            names = " ".join(missing)
            sys.exit(f"--real needs the real checkpoints: run `fbloop models download {names}` first")
        return settings
    from tests.scoring_models import build_aesthetic_mlp, build_clip, build_processor, make_settings

    class _Tiny:  # only the fields make_settings reads
        def __init__(self) -> None:
            self.root = root
            self.clip_l = build_clip(root / "clip-l", seed=13)
            self.pickscore_model = build_clip(root / "pickscore", seed=8, with_processor=False, logit_scale=4.6052)
            self.pickscore_processor = build_processor(root / "pickscore-processor")
            self.aesthetic_head = build_aesthetic_mlp(root / "aesthetic_mlp.pth")

        def settings_kwargs(self) -> dict[str, object]:
            return {
                "clip_model": str(self.clip_l),
                "pickscore_model": str(self.pickscore_model),
                "pickscore_processor": str(self.pickscore_processor),
                "aesthetic_head": str(self.aesthetic_head),
                "weights_dir": str(self.root / "weights"),
            }

    return make_settings(_Tiny(), device="auto")  # type: ignore[arg-type]


def bare_pass(settings, images: list[Path], prompt: str, loaded: dict) -> dict[str, list[float]]:
    """The same numbers with nothing but the models: one decode, one processor + forward per checkpoint."""
    import torch
    from PIL import Image

    from feedback_cli.scoring.loaders import pooled

    pil = []
    for p in images:
        with Image.open(p) as img:
            pil.append(img.convert("RGB"))
    out: dict[str, list[float]] = {}
    with torch.inference_mode():
        for ckpt in {settings.pickscore_model, settings.clip_model}:
            model, proc, image_proc = loaded[ckpt]
            dev, dt = next(model.parameters()).device, next(model.parameters()).dtype
            pv = image_proc(images=pil, return_tensors="pt")["pixel_values"].to(dev, dt)
            img = pooled(model.get_image_features(pixel_values=pv)).float()
            tok = proc(text=[prompt], padding=True, truncation=True, max_length=77, return_tensors="pt")
            txt = pooled(
                model.get_text_features(
                    input_ids=tok["input_ids"].to(dev), attention_mask=tok["attention_mask"].to(dev)
                )
            ).float()
            img_n = img / img.norm(dim=-1, keepdim=True)
            txt_n = txt / txt.norm(dim=-1, keepdim=True)
            if ckpt == settings.pickscore_model:
                out["pickscore"] = (model.logit_scale.exp().float() * (txt_n @ img_n.T)[0]).tolist()
            if ckpt == settings.clip_model:
                out["clip-score"] = torch.clamp(100 * (img_n @ txt_n[0]), min=0).tolist()
                head = loaded["head"]
                out["aesthetic"] = head(img_n.to(next(head.parameters()).device))[:, 0].tolist()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", action="store_true", help="use the real checkpoints (must be downloaded)")
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--repeat", type=int, default=10)
    args = parser.parse_args()

    import torch
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    torch.set_num_threads(max(1, torch.get_num_threads()))

    from feedback_cli.scoring import loaders as models
    from feedback_cli.scoring import registry
    from tests.scoring_models import make_images

    with tempfile.TemporaryDirectory(prefix="fbloop-bench-") as tmp:
        root = Path(tmp)
        settings = build_settings(args.real, root / "models")
        settings = settings.model_copy(update={"score_batch_size": max(args.images, 1)})
        images = make_images(root / "images", args.images, size=(args.size, args.size))
        models.clear()

        scorers = {name: registry.image_scorer(name, settings) for name in SCORERS}
        t0 = time.perf_counter()
        first = {name: s.score(images, PROMPT) for name, s in scorers.items()}  # loads every model once
        first_call = time.perf_counter() - t0

        loaded = {
            ckpt: (
                models.clip_model(ckpt, settings, "bench").model,
                models.clip_processor(proc, "bench"),
                models.clip_image_processor(proc, "bench"),  # the PIL backend, as the scorers use
            )
            for ckpt, proc in (
                (settings.pickscore_model, settings.pickscore_processor),
                (settings.clip_model, settings.clip_model),
            )
        }
        loaded["head"] = models.aesthetic_mlp(scorers["aesthetic"].head_path(), settings, "bench").model  # type: ignore[attr-defined]
        bare = bare_pass(settings, images, PROMPT, loaded)
        for name in SCORERS:
            diff = max(abs(a - b) for a, b in zip(first[name], bare[name], strict=True))
            if diff > 1e-3 * max(1.0, max(abs(v) for v in bare[name])):
                sys.exit(f"{name}: scorer and bare pass disagree by {diff}")

        scorer_times, bare_times = [], []
        for _ in range(args.repeat):  # interleaved so both see the same machine state
            models.clear_features()
            t = time.perf_counter()
            for s in scorers.values():
                s.score(images, PROMPT)
            scorer_times.append(time.perf_counter() - t)
            t = time.perf_counter()
            bare_pass(settings, images, PROMPT, loaded)
            bare_times.append(time.perf_counter() - t)

        scorer_t = statistics.median(scorer_times)
        bare_t = statistics.median(bare_times)
        device = models.resolve_device(settings.device)
        print(
            f"models: {'real' if args.real else 'tiny random'} on {device}; {args.images} images of "
            f"{args.size}px; scorers: {', '.join(SCORERS)}; median of {args.repeat}"
        )
        print(f"first call (incl. loading): {first_call:.3f}s")
        print(f"bare forward pass per image: {bare_t / args.images * 1000:.2f} ms")
        print(f"time per image: {scorer_t / args.images * 1000:.2f} ms")
        print(f"ratio to bare forward pass: {scorer_t / bare_t:.3f} (target <= 1.10)")
        kinds: dict[str, int] = {}
        for key, n in models.load_counts().items():
            kinds[key.split(":", 1)[0]] = kinds.get(key.split(":", 1)[0], 0) + n
        print(f"model loads: {models.load_count()} ({', '.join(f'{k} x{v}' for k, v in kinds.items())})")


if __name__ == "__main__":
    main()
