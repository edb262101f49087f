"""Train the scene model: a small open_clip CLIP, contrastive loss, CPU, fixed seed.

    python tests/scene_model/train.py            # writes tests/scene_model/scene-clip/
    python tests/scene_model/train.py --eval     # only measures the committed weights

Reproducible: the scenes, their order, the captions and torch's initialisation all come from
SEED, on two threads. Prints wall and CPU time and the held-out retrieval it reaches.
"""

from __future__ import annotations

import argparse
import io
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

# Waiting threads sleep instead of spinning: on a shared machine spinning only burns the
# CPU time the other thread needs (it changes no result).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scene_model.scenes import (
    Scene,
    caption,
    caption_variant,
    random_variant,
    render,
    scenes,
)

SEED = 20261203
HELD_OUT_SEED = 7  # scenes never trained on
FOLDER = Path(__file__).resolve().parent / "scene-clip"
CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 4, "width": 48, "head_width": 24, "patch_size": 8},
    # vocab_size must stay 49408 (the bundled tokenizer); its table is most of the weights.
    "text_cfg": {"context_length": 32, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 4},
}
MEAN = np.array([0.48145466, 0.4578275, 0.40821073], np.float32)  # open_clip's OpenAI values
STD = np.array([0.26862954, 0.26130258, 0.27577711], np.float32)
SIZE = CONFIG["vision_cfg"]["image_size"]


def pixels(image: Image.Image) -> np.ndarray:
    """open_clip's preprocessing of a square picture: bicubic to SIZE, normalised, CHW."""
    image = image.convert("RGB").resize((SIZE, SIZE), Image.Resampling.BICUBIC)
    array = (np.asarray(image, np.float32) / 255 - MEAN) / STD
    return array.transpose(2, 0, 1)


def altered(image: Image.Image, rng: random.Random) -> Image.Image:
    """A copy as people make them: cropped a little, resized, re-encoded."""
    w, h = image.size
    keep = rng.uniform(0.85, 1.0)
    cw, ch = int(w * keep), int(h * keep)
    left, top = rng.randint(0, w - cw), rng.randint(0, h - ch)
    image = image.crop((left, top, left + cw, top + ch)).resize((SIZE * 2, SIZE * 2))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=rng.randint(40, 90))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def training_pixels(items: list[Scene], rng: random.Random) -> np.ndarray:
    out = np.empty((len(items), 3, SIZE, SIZE), np.float32)
    for i, scene in enumerate(items):
        image = render(scene)
        out[i] = pixels(altered(image, rng) if rng.random() < 0.5 else image)
    return out


def train(
    steps: int, batch: int, n_scenes: int, out: Path, stage: int = 1, lr: float = 3e-3
) -> None:
    """Stage 1 starts from open_clip's initialisation; stage N > 1 continues from `out` as
    stage N-1 left it, on new scenes (the seed moves with the stage)."""
    import open_clip
    import torch
    import torch.nn.functional as F
    from safetensors.torch import save_file

    torch.set_num_threads(2)
    seed = SEED + stage - 1
    torch.manual_seed(seed)
    rng = random.Random(seed)
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    # Pairs that differ in one attribute, trained in the same batch: hard negatives.
    train_scenes = [x for s in scenes(seed, n_scenes // 2) for x in (s, random_variant(s, rng))]
    n_scenes = len(train_scenes)
    images = torch.from_numpy(training_pixels(train_scenes, rng))
    print(f"rendered {n_scenes} scenes in {time.perf_counter() - start_wall:.0f} s", flush=True)
    tokenizer = open_clip.get_tokenizer(
        "ViT-B-32", context_length=CONFIG["text_cfg"]["context_length"]
    )
    model = open_clip.CLIP(**CONFIG)
    if stage > 1:
        from safetensors.torch import load_file

        weights = load_file(str(out / "open_clip_model.safetensors"))
        model.load_state_dict({k: v.float() for k, v in weights.items()})
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    warmup = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimiser,
        lambda s: (
            min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
        ),
    )
    order: list[int] = []
    model.train()
    for step in range(steps):
        if len(order) < batch // 2:
            order += rng.sample(range(n_scenes // 2), n_scenes // 2)
        pairs, order = order[: batch // 2], order[batch // 2 :]
        picked = [i for pair in pairs for i in (2 * pair, 2 * pair + 1)]
        texts = tokenizer([caption_variant(train_scenes[i], rng) for i in picked])
        image_features, text_features, scale = model(images[picked], texts)
        logits = scale * image_features @ text_features.T
        labels = torch.arange(len(picked))
        loss = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        if step % 10 == 0 or step == steps - 1:
            print(
                f"step {step:4d} loss {loss.item():.3f} scale {scale.item():.1f} "
                f"at {time.perf_counter() - start_wall:.0f} s wall, "
                f"{time.process_time() - start_cpu:.0f} s CPU",
                flush=True,
            )
    wall, cpu = time.perf_counter() - start_wall, time.process_time() - start_cpu
    print(f"trained in {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "open_clip_config.json").write_text(
        json.dumps({"model_cfg": CONFIG, "preprocess_cfg": {}}, indent=1) + "\n"
    )
    state = {k: v.detach().half().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / "open_clip_model.safetensors"))


def evaluate(folder: Path, n: int = 500) -> dict[str, float]:
    """Held-out retrieval through open_clip's own loading of the saved folder: text→image
    R@1/R@5 (a scene showing everything the caption says counts) and image→image R@1 (an
    altered copy finds its original)."""
    import open_clip
    import torch

    torch.set_num_threads(2)
    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{folder}")
    tokenizer = open_clip.get_tokenizer(f"local-dir:{folder}")
    model.eval()
    held_out = scenes(HELD_OUT_SEED, n)
    rng = random.Random(HELD_OUT_SEED)
    originals = [render(s) for s in held_out]
    copies = [altered(image, rng) for image in originals]
    captions = [caption(s) for s in held_out]
    with torch.no_grad():
        a = model.encode_image(torch.stack([preprocess(i) for i in originals]), normalize=True)
        b = model.encode_image(torch.stack([preprocess(i) for i in copies]), normalize=True)
        t = model.encode_text(tokenizer(captions), normalize=True)
    ranked = (t @ a.T).argsort(dim=1, descending=True).numpy()
    same = np.array([[captions[j] == captions[i] for j in range(n)] for i in range(n)])
    hits = np.take_along_axis(same, ranked, axis=1)
    return {
        "text→image R@1": float(hits[:, 0].mean()),
        "text→image R@5": float(hits[:, :5].any(axis=1).mean()),
        "image→image R@1": float(((b @ a.T).argmax(dim=1) == torch.arange(n)).float().mean()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--scenes", type=int, default=16000)
    parser.add_argument("--out", type=Path, default=FOLDER)
    parser.add_argument("--stage", type=int, default=1, help="2: continue from --out's weights")
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--eval", action="store_true", help="only measure the saved weights")
    args = parser.parse_args()
    if not args.eval:
        train(args.steps, args.batch, args.scenes, args.out, args.stage, args.lr)
    for name, value in evaluate(args.out).items():
        print(f"{name}: {value:.3f}")


if __name__ == "__main__":
    main()
