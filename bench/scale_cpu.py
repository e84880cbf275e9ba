"""CPU forward-pass times of the scoring models' architectures, the figures docs/scale.md estimates GPU
throughput from when no GPU is at hand.

The models are built from their architecture with random weights (nothing is downloaded; the compute is the
same as with the real checkpoints): the CLIP ViT-H/14 image tower (PickScore), ViT-L/14 (CLIP-Score and the
aesthetic head), ViT-B/16 (DINO, VBench subject consistency), ViT-B/32 (VBench background consistency and
aesthetic quality), and RAFT-large (VBench dynamic degree, one frame pair at 256x448).

    python bench/scale_cpu.py [--batch 4 --repeats 3]

Last lines: ms per image (per frame pair for RAFT) for each, and the effective GFLOP/s of this CPU.
"""

from __future__ import annotations

import argparse
import time

#: forward GFLOPs per 224x224 image of each vision tower (the usual published counts)
GFLOPS = {"vit_h14": 167.4, "vit_l14": 81.1, "vit_b16": 17.6, "vit_b32": 4.4}


def vision_tower(name: str):  # type: ignore[no-untyped-def]
    from transformers import CLIPVisionConfig, CLIPVisionModel, ViTConfig, ViTModel

    if name == "vit_b16":
        return ViTModel(ViTConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, patch_size=16))
    sizes = {
        "vit_h14": {"hidden_size": 1280, "num_hidden_layers": 32, "num_attention_heads": 16, "patch_size": 14},
        "vit_l14": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16, "patch_size": 14},
        "vit_b32": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12, "patch_size": 32},
    }[name]
    return CLIPVisionModel(CLIPVisionConfig(intermediate_size=4 * sizes["hidden_size"], image_size=224, **sizes))


def timed(fn, repeats: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch}")
    rates = []
    with torch.inference_mode():
        for name in ("vit_h14", "vit_l14", "vit_b16", "vit_b32"):
            model = vision_tower(name).eval()
            pixels = torch.randn(args.batch, 3, 224, 224)
            seconds = timed(lambda m=model, p=pixels: m(pixel_values=p), args.repeats) / args.batch
            rates.append(GFLOPS[name] / seconds)
            print(f"{name}: {seconds * 1000:.0f} ms per image ({GFLOPS[name] / seconds:.0f} GFLOP/s)")
            del model
        from torchvision.models.optical_flow import raft_large

        raft = raft_large(weights=None).eval()
        a, b = torch.randn(1, 3, 256, 448), torch.randn(1, 3, 256, 448)
        seconds = timed(lambda: raft(a, b), args.repeats)
        print(f"raft_large: {seconds * 1000:.0f} ms per frame pair (256x448, 12 iterations)")
    print(f"effective CPU GFLOP/s (median of the ViTs): {sorted(rates)[len(rates) // 2]:.0f}")


if __name__ == "__main__":
    main()
