"""VBench dimensions: formulas against independent computations, synthetic videos with known motion, the real
loading code on tiny models, and the official backend against a fake `vbench` executable (scorers.md §V)."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from feedback_cli.errors import ScorerUnavailable

pytest.register_assert_rewrite("tests.scoring_models")

from feedback_cli.scoring import loaders as models  # noqa: E402
from feedback_cli.scoring import registry, vbench, vbench_official  # noqa: E402
from feedback_cli.scoring.video_io import read_video  # noqa: E402
from tests.scoring_models import TinyModels, make_settings, texture, translating_frames, write_video  # noqa: E402

pytest_plugins = ["tests.scoring_models"]

DIMS = (
    "subject_consistency",
    "background_consistency",
    "temporal_flickering",
    "motion_smoothness",
    "dynamic_degree",
    "aesthetic_quality",
    "imaging_quality",
)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """128 x 128 H.264 clips (lossless): static, moving 4 px/frame at 8 fps, moving 1 px/frame at 24 fps,
    a non-square moving one, and a 64 px one too small for RAFT."""
    root = tmp_path_factory.mktemp("clips")
    return {
        "static": write_video(root / "static.mp4", translating_frames(8, 128, 128, 0), fps=8),
        "moving": write_video(root / "moving.mp4", translating_frames(8, 128, 128, 4), fps=8),
        "moving24": write_video(root / "moving24.mp4", translating_frames(24, 128, 128, 1), fps=24),
        "wide": write_video(root / "wide.mp4", translating_frames(6, 130, 150, 3, seed=1), fps=8),
        "small": write_video(root / "small.mp4", translating_frames(4, 64, 64, 2), fps=8),
    }


def test_registry_has_vbench_names() -> None:
    for name in DIMS:
        assert name in registry.VIDEO_SCORERS
    assert set(vbench.DIMENSION_CLASSES) == set(DIMS)


# --------------------------------------------------------------------------- pure formulas


def _vbench_consistency_loop(features: torch.Tensor) -> float:
    """VBench's loop, verbatim in structure (subject_consistency.py / background_consistency.py)."""
    video_sim = 0.0
    first = former = None
    for i in range(len(features)):
        f = F.normalize(features[i].unsqueeze(0), dim=-1, p=2)
        if i == 0:
            first = f
        else:
            sim_pre = max(0.0, F.cosine_similarity(former, f).item())
            sim_fir = max(0.0, F.cosine_similarity(first, f).item())
            video_sim += (sim_pre + sim_fir) / 2
        former = f
    return video_sim / (len(features) - 1)


def test_consistency_matches_vbench_loop() -> None:
    torch.manual_seed(0)
    feats = torch.randn(9, 12)
    feats[4] = -feats[0]  # a negative cosine, clamped to 0
    assert vbench.consistency(feats) == pytest.approx(_vbench_consistency_loop(feats), abs=1e-6)
    assert vbench.consistency(feats[:1].repeat(5, 1)) == pytest.approx(1.0)


def test_sampling_interval_uses_pythons_round() -> None:
    assert [vbench.sample_interval(f) for f in (8, 24, 30, 20, 4, 12, 0)] == [1, 3, 4, 2, 1, 2, 1]


def test_dynamic_decision_rule() -> None:
    # 512 x 512, N = 40 sampled frames: thres 12 px, count_num 10 (scorers.md §V.6 worked example)
    scores = [13.0] * 9 + [1.0] * 30
    assert vbench.dynamic_decision(scores, 512, 512, 40) == (False, pytest.approx(9 / 39))
    assert vbench.dynamic_decision([*scores, 12.5], 512, 512, 40)[0] is True
    assert vbench.dynamic_decision([12.0] * 39, 512, 512, 40) == (False, 0.0)  # strictly greater
    # banker's rounding: N = 10 -> round(2.5) = 2 pairs suffice
    assert vbench.dynamic_decision([0, 0, 13, 13, 0], 512, 512, 10)[0] is True
    # N <= 2 -> count_num 0 -> True on the first pair whatever its score
    assert vbench.dynamic_decision([0.0], 512, 512, 2) == (True, 0.0)
    assert vbench.dynamic_decision([], 512, 512, 1) == (False, 0.0)
    # the threshold scales with the short side: 128 px -> 3 px
    assert vbench.dynamic_decision([3.1] * 7, 128, 300, 8)[0] is True
    assert vbench.dynamic_decision([2.9] * 7, 128, 300, 8)[0] is False


def test_padding_and_flow_score() -> None:
    x = torch.arange(2 * 3 * 13 * 21, dtype=torch.float32).reshape(2, 3, 13, 21)
    padded = vbench.pad_to_8(x)
    assert padded.shape[-2:] == (16, 24)
    # sintel mode: 3 rows -> 1 top, 2 bottom; 3 cols -> 1 left, 2 right; replicate
    assert torch.equal(padded[..., 1:14, 1:22], x)
    assert torch.equal(padded[..., 0, 1:22], x[..., 0, :])
    assert torch.equal(padded[..., 15, 1:22], x[..., 12, :])
    flow = torch.zeros(2, 10, 10)
    flow[0, :5, :] = 3.0  # 50 px at magnitude 3, the rest 0 -> top 5 (5 %) all 3
    flow[1, 0, :5] = 4.0  # 5 px at magnitude 5
    assert vbench.flow_score(flow) == pytest.approx(5.0)
    assert vbench.flow_score(torch.zeros(2, 4, 4)) != vbench.flow_score(torch.zeros(2, 4, 4))  # NaN: too small


def test_normalize_and_weights(tiny_settings) -> None:
    expected = {
        "subject_consistency": (0.1462, 1.0, 1.0),
        "background_consistency": (0.2615, 1.0, 1.0),
        "temporal_flickering": (0.6293, 1.0, 1.0),
        "motion_smoothness": (0.706, 0.9975, 1.0),
        "dynamic_degree": (0.0, 1.0, 0.5),
        "aesthetic_quality": (0.0, 1.0, 1.0),
        "imaging_quality": (0.0, 1.0, 1.0),
    }
    for dim, (low, high, weight) in expected.items():
        scorer = registry.video_scorer(dim, tiny_settings)
        assert scorer.default_weights[dim] == weight
        assert scorer.normalize(dim, low) == pytest.approx(0.0)
        assert scorer.normalize(dim, high) == pytest.approx(100.0)
        assert scorer.normalize(dim, (low + high) / 2) == pytest.approx(50.0)
        assert scorer.normalize(dim, low - 0.1) == 0.0
    dyn = registry.video_scorer("dynamic_degree", tiny_settings)
    assert dyn.default_weights["dynamic_degree_graded"] == 0.0
    assert dyn.normalize("dynamic_degree_graded", 0.25) == pytest.approx(25.0)
    # CogVideoX-5B row of §V.12: 7 quality dims weighted -> 82.76 (published Quality 82.75)
    row = {
        "subject_consistency": 0.9623,
        "background_consistency": 0.9652,
        "temporal_flickering": 0.9866,
        "motion_smoothness": 0.9692,
        "dynamic_degree": 0.7097,
        "aesthetic_quality": 0.6198,
        "imaging_quality": 0.6290,
    }
    total = sum(vbench.vbench_normalize(d, v) * expected[d][2] for d, v in row.items()) / 6.5
    assert total == pytest.approx(82.75, abs=0.1)


def test_imaging_transform_longer_side(tiny_settings) -> None:
    frames = torch.randint(0, 256, (2, 3, 600, 800), dtype=torch.uint8)
    out = vbench.imaging_transform(frames, "longer")
    assert out.shape[-2:] == (384, 512) and out.dtype == torch.float32 and float(out.max()) <= 1.0
    assert vbench.imaging_transform(frames[:, :, :300, :400], "longer").shape[-2:] == (300, 400)
    assert vbench.imaging_transform(frames, "shorter_centercrop").shape[-2:] == (512, 512)


# --------------------------------------------------------------------------- frames


def test_pyav_reads_every_frame_and_fps(clips) -> None:
    video = read_video(clips["moving24"])
    assert video.num_frames == 24 and video.fps == pytest.approx(24.0)
    assert video.frames.dtype == np.uint8 and video.frames.shape[1:] == (128, 128, 3)
    expected = translating_frames(24, 128, 128, 1)
    assert np.abs(video.frames.astype(int) - expected.astype(int)).mean() < 1.0  # lossless up to YUV rounding


# --------------------------------------------------------------------------- known motion


def shift_oracle(image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
    """A real (if narrow) flow estimator for horizontal translations: the integer shift minimising MAE."""
    flows = []
    for a, b in zip(image1, image2, strict=True):
        errors = {s: float((torch.roll(a, s, dims=-1) - b)[..., 16:-16].abs().mean()) for s in range(-8, 9)}
        best = min(errors, key=errors.__getitem__)
        flow = torch.zeros(2, *a.shape[-2:])
        flow[0] = best
        flows.append(flow)
    return torch.stack(flows)


def test_flicker_and_dynamic_on_known_motion(tiny_settings, clips) -> None:
    flicker = registry.video_scorer("temporal_flickering", tiny_settings)
    values = flicker.score([clips["static"], clips["moving"]], "p")["temporal_flickering"]
    assert values[0] == pytest.approx(1.0, abs=1e-3)
    assert values[1] < values[0] - 0.01
    frames = read_video(clips["moving"]).frames.astype(np.float32)
    by_hand = (255 - np.mean([np.mean(np.abs(frames[i] - frames[i + 1])) for i in range(7)])) / 255
    assert values[1] == pytest.approx(by_hand, abs=1e-6)

    dyn = vbench.DynamicDegree(tiny_settings, flow_fn=shift_oracle)
    out = dyn.score([clips["static"], clips["moving"], clips["moving24"]], "p")
    # static: no pair moves; 4 px/frame at 8 fps > 3 px threshold on 128 px: dynamic.
    # 1 px/frame at 24 fps is sampled every 3rd frame -> 3 px per pair, not > 3 px: static.
    assert out["dynamic_degree"] == [0.0, 1.0, 0.0]
    assert out["dynamic_degree_graded"] == [0.0, 1.0, 0.0]
    # frame pairs batched by 2 or 16 give the same pair scores
    frames = vbench.frames_tensor(read_video(clips["moving"]))
    small_batches = vbench.DynamicDegree(tiny_settings.model_copy(update={"score_batch_size": 2}), shift_oracle)
    assert small_batches.pair_scores(frames) == dyn.pair_scores(frames) == [pytest.approx(4.0)] * 7


def test_dynamic_degree_runs_real_raft_loading(tiny_models: TinyModels, clips) -> None:
    static_raft = make_settings(tiny_models, raft_weights=str(tiny_models.raft_static))
    moving_raft = make_settings(tiny_models, raft_weights=str(tiny_models.raft_moving))
    models.clear()
    # RAFT whose flow head outputs 0 -> nothing moves, even on the moving clip
    out = registry.video_scorer("dynamic_degree", static_raft).score([clips["moving"]], "p")
    assert out == {"dynamic_degree": [0.0], "dynamic_degree_graded": [0.0]}
    # RAFT whose flow head adds 0.1 per update -> 20 x 8 x 0.1 = 16 px everywhere -> dynamic
    out = registry.video_scorer("dynamic_degree", moving_raft).score([clips["static"], clips["wide"]], "p")
    assert out == {"dynamic_degree": [1.0, 1.0], "dynamic_degree_graded": [1.0, 1.0]}
    assert models.load_count(str(tiny_models.raft_moving)) == 1
    with pytest.raises(ScorerUnavailable, match="128 px"):
        registry.video_scorer("dynamic_degree", moving_raft).score([clips["small"]], "p")


def test_dynamic_degree_flow_is_raft_with_20_updates(tiny_models: TinyModels, clips) -> None:
    """The per-pair score equals torchvision raft_large(num_flow_updates=20) on 2*(x/255)-1 padded frames."""
    from torchvision.models.optical_flow import raft_large

    settings = make_settings(tiny_models)
    scorer = vbench.DynamicDegree(settings)
    frames = vbench.frames_tensor(read_video(clips["wide"]))[:3]
    scores = scorer.pair_scores(frames)
    model = raft_large(weights=None)
    model.load_state_dict(torch.load(tiny_models.raft_random, weights_only=True))
    model.eval()
    padded = vbench.pad_to_8(frames.float())
    assert padded.shape[-2:] == (136, 152)
    with torch.no_grad():
        flow = model(2 * (padded[:-1] / 255) - 1, 2 * (padded[1:] / 255) - 1, num_flow_updates=20)[-1]
    rad = torch.sqrt(flow[:, 0] ** 2 + flow[:, 1] ** 2).flatten(1)
    cut = int(136 * 152 * 0.05)
    expected = [float(torch.sort(r, descending=True).values[:cut].mean()) for r in rad]
    assert scores == pytest.approx(expected, rel=1e-4, abs=1e-5)


# --------------------------------------------------------------------------- model-based dimensions


def _dino_by_hand(ref: Path, video: Path) -> float:
    """VBench's loop: one frame at a time through the model, features of the CLS token."""
    from torchvision import transforms
    from transformers import ViTModel

    model = ViTModel.from_pretrained(str(ref), add_pooling_layer=False).eval()
    frames = torch.from_numpy(read_video(video).frames).permute(0, 3, 1, 2)
    tf = transforms.Compose(
        [
            transforms.Resize(size=32, antialias=False),
            transforms.Lambda(lambda x: x.float() / 255.0),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    images = tf(frames)
    with torch.no_grad():
        feats = torch.cat(
            [
                model(pixel_values=images[i : i + 1], interpolate_pos_encoding=True).last_hidden_state[:, 0]
                for i in range(len(images))
            ]
        )
    return _vbench_consistency_loop(feats)


def test_subject_consistency_by_hand(tiny_settings, tiny_models: TinyModels, clips) -> None:
    scorer = registry.video_scorer("subject_consistency", tiny_settings)
    values = scorer.score([clips["moving"], clips["wide"], clips["static"]], "p")["subject_consistency"]
    assert values[0] == pytest.approx(_dino_by_hand(tiny_models.dino, clips["moving"]), abs=1e-5)
    assert values[1] == pytest.approx(_dino_by_hand(tiny_models.dino, clips["wide"]), abs=1e-5)  # non-square
    assert values[2] == pytest.approx(1.0, abs=1e-4)
    assert scorer.model_id == str(tiny_models.dino)


def _clip_frames_by_hand(ref: Path, video: Path) -> torch.Tensor:
    from torchvision import transforms
    from transformers import CLIPModel

    model = CLIPModel.from_pretrained(str(ref)).eval()
    frames = torch.from_numpy(read_video(video).frames).permute(0, 3, 1, 2)
    tf = transforms.Compose(
        [
            transforms.Resize(32, interpolation=transforms.InterpolationMode.BICUBIC, antialias=False),
            transforms.CenterCrop(32),
            transforms.Lambda(lambda x: x.float() / 255.0),
            transforms.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)),
        ]
    )
    with torch.no_grad():
        return model.visual_projection(model.vision_model(pixel_values=tf(frames)).pooler_output)


def test_background_consistency_by_hand(tiny_settings, tiny_models: TinyModels, clips) -> None:
    scorer = registry.video_scorer("background_consistency", tiny_settings)
    value = scorer.score([clips["wide"]], "p")["background_consistency"][0]
    expected = _vbench_consistency_loop(_clip_frames_by_hand(tiny_models.clip_b32, clips["wide"]))
    assert value == pytest.approx(expected, abs=1e-5)


def test_aesthetic_quality_by_hand_and_shared_vit(tiny_settings, tiny_models: TinyModels, clips, tmp_path) -> None:
    from tests.scoring_models import make_images

    value = registry.video_scorer("aesthetic_quality", tiny_settings).score([clips["moving"]], "p")
    feats = F.normalize(_clip_frames_by_hand(tiny_models.clip_l, clips["moving"]), dim=-1, p=2)
    head = torch.load(tiny_models.vbench_head, weights_only=True)
    expected = float(((feats @ head["weight"].T + head["bias"])[:, 0] / 10).mean())
    assert value["aesthetic_quality"][0] == pytest.approx(expected, abs=1e-5)
    # the same ViT-L/14 serves the image scorers: still one load
    images = make_images(tmp_path, 2)
    registry.image_scorer("clip-score", tiny_settings).score(images, "p")
    registry.image_scorer("aesthetic", tiny_settings).score(images, "p")
    assert models.load_count(str(tiny_models.clip_l)) == 1


def test_video_batching_equivalence(tiny_models: TinyModels, tiny_settings, clips) -> None:
    names = ("subject_consistency", "background_consistency", "aesthetic_quality")
    one = make_settings(tiny_models, score_batch_size=1)
    eight = make_settings(tiny_models, score_batch_size=8)
    for name in names:
        a = registry.video_scorer(name, one).score([clips["moving"]], "p")[name]
        b = registry.video_scorer(name, eight).score([clips["moving"]], "p")[name]
        assert a == pytest.approx(b, abs=1e-6), name


def test_imaging_quality_with_pyiqa(tiny_settings, tiny_models: TinyModels, tmp_path) -> None:
    pytest.importorskip("pyiqa")
    video = write_video(tmp_path / "iq.mp4", translating_frames(3, 48, 64, 2), fps=8)
    value = registry.video_scorer("imaging_quality", tiny_settings).score([video], "p")["imaging_quality"][0]
    from pyiqa.archs.musiq_arch import MUSIQ

    model = MUSIQ(pretrained_model_path=str(tiny_models.musiq))
    model.training = False
    frames = torch.from_numpy(read_video(video).frames).permute(0, 3, 1, 2) / 255.0
    with torch.no_grad():
        per_frame = [float(model(frames[i : i + 1])) for i in range(3)]
    assert value == pytest.approx(sum(per_frame) / 3 / 100, rel=1e-5)


def test_imaging_quality_without_pyiqa_is_unavailable(tiny_settings, clips, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "pyiqa", None)
    monkeypatch.setitem(sys.modules, "pyiqa.archs", None)
    monkeypatch.setitem(sys.modules, "pyiqa.archs.musiq_arch", None)
    with pytest.raises(ScorerUnavailable, match="pyiqa"):
        registry.video_scorer("imaging_quality", tiny_settings).score([clips["static"]], "p")


def test_motion_smoothness_needs_official_backend(tiny_settings, clips) -> None:
    with pytest.raises(ScorerUnavailable) as err:
        registry.video_scorer("motion_smoothness", tiny_settings).score([clips["static"]], "p")
    assert "official" in err.value.message and "FBLOOP_VBENCH_PYTHON" in (err.value.hint or "")


def test_single_frame_video_is_refused(tiny_settings, tmp_path) -> None:
    from PIL import Image

    still = tmp_path / "still.png"
    Image.fromarray(texture(32, 32)).save(still)
    with pytest.raises(ScorerUnavailable, match="at least 2 frames"):
        registry.video_scorer("temporal_flickering", tiny_settings).score([still], "p")


# --------------------------------------------------------------------------- official backend

FAKE_VBENCH = r'''#!{python}
"""A fake `vbench` console script: parses `vbench evaluate` like VBench's CLI and writes its results JSON."""
import argparse, json, os, sys, time

with open(os.environ["FAKE_VBENCH_LOG"], "a") as log:
    log.write(json.dumps({{"argv": sys.argv[1:], "path0": os.environ["PATH"].split(os.pathsep)[0]}}) + "\n")
if os.environ.get("FAKE_VBENCH_FAIL"):
    print("Traceback ...\nRuntimeError: Found no NVIDIA driver on your system.", file=sys.stderr)
    sys.exit(0)  # VBench's wrapper exits 0 even when the evaluation fails
parser = argparse.ArgumentParser(prog="vbench")
sub = parser.add_subparsers(dest="cmd")
ev = sub.add_parser("evaluate")
ev.add_argument("--videos_path", required=True)
ev.add_argument("--dimension", required=True)
ev.add_argument("--mode", default="vbench_standard")
ev.add_argument("--prompt", default="None")
ev.add_argument("--prompt_file")
ev.add_argument("--output_path", default="./evaluation_results/")
ev.add_argument("--imaging_quality_preprocessing_mode", default="longer")
args = parser.parse_args()
assert args.cmd == "evaluate" and args.mode == "custom_input" and args.prompt == "None"
with open(args.prompt_file) as fh:
    prompts = json.load(fh)
videos = sorted(os.path.join(args.videos_path, n) for n in os.listdir(args.videos_path)
                if n.lower().endswith((".mp4", ".gif")))
assert sorted(map(os.path.abspath, prompts)) == sorted(map(os.path.abspath, videos)), (prompts, videos)
assert len(set(prompts.values())) == 1

def value(i):
    if args.dimension == "dynamic_degree":
        return i % 2 == 0
    if args.dimension == "imaging_quality":
        return 60.0 + i
    return 0.9 + i / 100

rows = [{{"video_path": v, "video_results": value(i)}} for i, v in enumerate(videos)]
aggregate = sum(float(r["video_results"]) for r in rows) / len(rows)
if args.dimension == "imaging_quality":
    aggregate /= 100
os.makedirs(args.output_path, exist_ok=True)
name = "results_" + time.strftime("%Y-%m-%d-%H:%M:%S")
with open(os.path.join(args.output_path, name + "_eval_results.json"), "w") as fh:
    json.dump({{args.dimension: [aggregate, rows]}}, fh)
'''


@pytest.fixture
def fake_vbench(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A fake VBench env: bin/python (the test interpreter) and bin/vbench; returns (python, log)."""
    bin_dir = tmp_path / "vbench-env" / "bin"
    bin_dir.mkdir(parents=True)
    python = bin_dir / "python"
    python.symlink_to(sys.executable)
    exe = bin_dir / "vbench"
    exe.write_text(FAKE_VBENCH.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "vbench-calls.jsonl"
    monkeypatch.setenv("FAKE_VBENCH_LOG", str(log))
    return python, log


def _calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def test_official_backend_runs_vbench_cli(tiny_models: TinyModels, tiny_settings, fake_vbench, clips) -> None:
    python, log = fake_vbench
    settings = make_settings(tiny_models, vbench_backend="official", vbench_python=str(python))
    videos = [clips["moving"], clips["static"], clips["wide"]]
    sc = registry.video_scorer("subject_consistency", settings)
    assert sc.score(videos, 'a prompt with spaces, quotes " and $dollars')["subject_consistency"] == pytest.approx(
        [0.90, 0.91, 0.92]
    )
    assert sc.model_id.startswith("vbench-official")
    dyn = registry.video_scorer("dynamic_degree", settings).score(videos, "p")
    assert dyn == {"dynamic_degree": [1.0, 0.0, 1.0]}
    iq = registry.video_scorer("imaging_quality", settings).score(videos, "p")
    assert iq["imaging_quality"] == pytest.approx([0.60, 0.61, 0.62])  # per-video MUSIQ / 100
    calls = _calls(log)
    assert len(calls) == 3
    argv = calls[0]["argv"]
    assert argv[0] == "evaluate"
    assert argv[argv.index("--mode") + 1] == "custom_input"
    assert argv[argv.index("--dimension") + 1] == "subject_consistency"
    assert "--prompt_file" in argv and "--prompt" not in argv
    assert calls[0]["path0"] == str(python.parent)
    iq_argv = calls[2]["argv"]
    assert iq_argv[iq_argv.index("--imaging_quality_preprocessing_mode") + 1] == "longer"
    # memoised: the same videos, prompt and dimension do not run VBench again
    sc.score(videos, 'a prompt with spaces, quotes " and $dollars')
    assert len(_calls(log)) == 3


def test_motion_smoothness_uses_official_when_configured(tiny_models: TinyModels, tiny_settings, fake_vbench, clips):
    python, log = fake_vbench
    settings = make_settings(tiny_models, vbench_python=str(python))  # backend stays native
    out = registry.video_scorer("motion_smoothness", settings).score([clips["moving"]], "p")
    assert out == {"motion_smoothness": [pytest.approx(0.90)]}
    assert [c["argv"][c["argv"].index("--dimension") + 1] for c in _calls(log)] == ["motion_smoothness"]
    # the natively computed dimensions stay native
    registry.video_scorer("temporal_flickering", settings).score([clips["moving"]], "p")
    assert len(_calls(log)) == 1


def test_official_backend_failure_is_reported(tiny_models: TinyModels, tiny_settings, fake_vbench, clips, monkeypatch):
    python, _ = fake_vbench
    monkeypatch.setenv("FAKE_VBENCH_FAIL", "1")
    settings = make_settings(tiny_models, vbench_backend="official", vbench_python=str(python))
    with pytest.raises(ScorerUnavailable, match="NVIDIA"):
        registry.video_scorer("background_consistency", settings).score([clips["moving"]], "p")


def test_official_backend_needs_its_env(tiny_models: TinyModels, tiny_settings, tmp_path, clips) -> None:
    settings = make_settings(tiny_models, vbench_backend="official")
    with pytest.raises(ScorerUnavailable, match="FBLOOP_VBENCH_PYTHON"):
        registry.video_scorer("subject_consistency", settings).score([clips["moving"]], "p")
    lonely = tmp_path / "python"
    lonely.symlink_to(sys.executable)
    settings = make_settings(tiny_models, vbench_backend="official", vbench_python=str(lonely))
    with pytest.raises(ScorerUnavailable, match="no `vbench` command"):
        registry.video_scorer("subject_consistency", settings).score([clips["moving"]], "p")


def test_official_results_parser(tmp_path) -> None:
    path = tmp_path / "results_x_eval_results.json"
    rows = [
        {"video_path": "/a/video001.mp4", "video_results": False},
        {"video_path": "/a/video000.mp4", "video_results": True},
    ]
    path.write_text(json.dumps({"dynamic_degree": [0.5, rows]}))
    assert vbench_official.parse_results(path, "dynamic_degree", ["video000.mp4", "video001.mp4"]) == [
        1.0,
        0.0,
    ]
    with pytest.raises(ScorerUnavailable, match="no result"):
        vbench_official.parse_results(path, "dynamic_degree", ["video002.mp4"])
    assert os.environ.get("FAKE_VBENCH_FAIL") is None


# --------------------------------------------------------------------------- real weights


def _cached(repo: str) -> bool:
    from feedback_cli.scoring.requirements import Requirement, status

    return status(Requirement("x", "hf-model", repo, "", repo), None).available  # type: ignore[arg-type]


@pytest.mark.weights
@pytest.mark.skipif(
    not (_cached("facebook/dino-vitb16") and _cached("openai/clip-vit-base-patch32")),
    reason="real DINO ViT-B/16 / CLIP ViT-B/32 weights are not in the HF cache",
)
def test_real_consistency_models(clips) -> None:
    from feedback_cli.config import Settings

    models.clear()
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    for name in ("subject_consistency", "background_consistency"):
        static, moving = registry.video_scorer(name, settings).score([clips["static"], clips["moving"]], "p")[name]
        assert static == pytest.approx(1.0, abs=1e-3)
        assert 0.5 < moving <= static
