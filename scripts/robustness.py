"""Accuracy and refusals of the shipped model through the service's front end, on real and generated uploads.

Usage: python scripts/robustness.py [--per-kind N] [--real-dir DIR] [--baseline JSON] [--save-json JSON]
                                    [--out docs/robustness.md] [--montage docs/robustness-failures.png]

Sections: every labelled set in --real-dir (ZIPs with labels.csv, ../shared/data/real by default; the
Semeion fixture in tests/fixtures when that is absent), CVL validation digits drawn into photographed
scenes (when that set is there), the MNIST test split sent as PNGs, each generated
condition of scripts/distortions.py, and images with no digit (which must be refused). `--baseline` puts
the figures of an earlier run (its `--save-json`) beside this run's as "before".
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

from distortions import EMPTY_KINDS, KINDS, naive_input  # noqa: E402

from digitflow import labelled  # noqa: E402
from digitflow.frontend.ink import border  # noqa: E402
from digitflow.imaging import to_png  # noqa: E402
from digitflow.settings import get_settings  # noqa: E402
from model_training.data import load_test_split  # noqa: E402
from model_training.finetune import held_out_if_trained  # noqa: E402
from worker.engine import Engine  # noqa: E402

SEMEION_FIXTURE = ROOT / "tests" / "fixtures" / "semeion.zip"


def read_labelled(path: Path) -> tuple[list[bytes], np.ndarray]:
    """A labelled set's images and labels (digitflow.labelled reads the format)."""
    s = labelled.read_labelled(path)
    return s.images, s.labels


def front_end(data: list[bytes]) -> tuple[np.ndarray, np.ndarray, float]:
    """The 28x28 digits the model sees (zeros where refused), a refused mask, and CPU ms per image."""
    start = time.process_time()
    digits, refused = labelled.to_digits(data)
    return digits, refused, (time.process_time() - start) * 1000 / max(len(data), 1)


def predict(engine: Engine, digits: np.ndarray) -> np.ndarray:
    return engine.predict(digits[..., None].astype(np.float32) / 255.0).argmax(1)


def score(engine: Engine, data: list[bytes], labels: np.ndarray) -> dict:
    """Accuracy (a refused image counts as wrong), refusals, CPU per image, and the failures' indices."""
    digits, refused, ms = front_end(data)
    pred = predict(engine, digits)
    right = (pred == labels) & ~refused
    return {"n": len(labels), "accuracy": float(right.mean()), "refused": int(refused.sum()), "ms": ms,
            "digits": digits, "pred": np.where(refused, -1, pred), "wrong": np.flatnonzero(~right)}


def measure(engine: Engine, x: np.ndarray, y: np.ndarray, per_kind: int, seed: int = 0) -> list[dict]:
    """Each generated condition on the same seeded sample of MNIST test digits (used by the tests too)."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(x))[:per_kind]
    rows = []
    for kind, make in KINDS.items():
        data = [make(x[i], rng) for i in idx]
        r = score(engine, data, y[idx])
        without = predict(engine, np.stack([naive_input(d) for d in data]))
        rows.append({"kind": kind, "without": float((without == y[idx]).mean()), "data": data, "labels": y[idx], **r})
    return rows


SCENE_SET = "cvl_valid"  # the real writers photographed in scenes (their own images, as scanned, beside)
SCENES = ("sheet on a desk (photo)", "phone photo (blur, noise, JPEG)", "light gradient or shadow", "ruled paper")


def as_ink(scan: bytes) -> np.ndarray:
    """A scanned digit (dark on light) as the ink coverage the generated conditions draw: paper 0, ink 255."""
    ink = 255.0 - np.asarray(Image.open(io.BytesIO(scan)).convert("L"), np.float32)
    ink = np.clip(ink - np.median(border(ink)), 0, None)
    return np.clip(ink * 255.0 / max(float(ink.max()), 1.0), 0, 255).astype(np.uint8)


def in_scenes(engine: Engine, data: list[bytes], labels: np.ndarray, n: int, seed: int = 0) -> list[dict]:
    """Real writers' digits put into generated scenes (SCENES), beside the same digits as they were scanned."""
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(labels))[:n]
    rows = [{"kind": "as scanned", **score(engine, [data[i] for i in idx], labels[idx])}]
    ink = [as_ink(data[i]) for i in idx]
    for kind in SCENES:
        rows.append({"kind": kind, **score(engine, [KINDS[kind](x, rng) for x in ink], labels[idx])})
    return rows


def refusals(per_kind: int, seed: int = 0) -> list[dict]:
    """Images with no digit: how many the front end refuses (all of them, ideally)."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind, make in EMPTY_KINDS.items():
        _, refused, _ = front_end([make(rng) for _ in range(per_kind)])
        rows.append({"kind": kind, "n": per_kind, "refused": int(refused.sum())})
    return rows


def montage(cases: list[tuple[str, bytes, np.ndarray, int, int]], path: Path, cell: int = 56, cols: int = 8) -> None:
    """Failures as pictures: the upload, the 28x28 the model saw, truth and prediction (-1: refused)."""
    rows = (len(cases) + cols - 1) // cols
    sheet = Image.new("L", (cols * 2 * cell, rows * (cell + 24)), 96)
    draw = ImageDraw.Draw(sheet)
    for k, (name, data, seen, truth, pred) in enumerate(cases):
        r, c = divmod(k, cols)
        x0, y0 = c * 2 * cell, r * (cell + 24)
        src = Image.open(io.BytesIO(data)).convert("L")
        src.thumbnail((cell, cell))
        sheet.paste(src, (x0 + (cell - src.width) // 2, y0 + (cell - src.height) // 2))
        sheet.paste(Image.fromarray(seen).resize((cell, cell), Image.Resampling.NEAREST), (x0 + cell, y0))
        draw.text((x0 + 2, y0 + cell), f"{name[:16]}", fill=255)
        draw.text((x0 + 2, y0 + cell + 11), f"true {truth} read {'refused' if pred < 0 else pred}", fill=255)
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(path)


def real_sets(real_dir: Path | None) -> dict[str, Path]:
    """Every labelled ZIP in real_dir; the carried Semeion fixture when that has none."""
    sets = labelled.real_sets(real_dir)
    if "semeion" not in sets and SEMEION_FIXTURE.exists():
        sets["semeion"] = SEMEION_FIXTURE
    return sets


def pct(v: float | None) -> str:
    return "" if v is None else f"{100 * v:.2f}%"


def before_cells(base: dict, section: str, key: str) -> list[str]:
    b = base.get(section, {}).get(key)
    return ["", ""] if b is None else [pct(b["accuracy"]), str(b["refused"])]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--per-kind", type=int, default=1000)
    p.add_argument("--data-dir", default=os.environ.get("MNIST_DIR") or str(ROOT / "tests" / "fixtures" / "mnist"))
    p.add_argument("--real-dir", default=str(ROOT.parent / "shared" / "data" / "real"))
    p.add_argument("--baseline", help="JSON of an earlier run (--save-json), shown as 'before'")
    p.add_argument("--save-json", help="write this run's figures here")
    p.add_argument("--out", default=str(ROOT / "docs" / "robustness.md"))
    p.add_argument("--montage", default=str(ROOT / "docs" / "robustness-failures.png"))
    args = p.parse_args()
    base = json.loads(Path(args.baseline).read_text()) if args.baseline else {}
    engine = Engine(get_settings().model_dir, "onnx", threads=os.cpu_count() or 1)
    t0 = time.time()
    figures: dict = {"real": {}, "mnist": {}, "kinds": {}, "empty": {}}
    failures: list[tuple[str, bytes, np.ndarray, int, int]] = []

    real_rows = []
    for name, path in real_sets(Path(args.real_dir)).items():
        data, labels = read_labelled(path)
        r = score(engine, data, labels)
        figures["real"][name] = {k: r[k] for k in ("n", "accuracy", "refused", "ms")}
        held = held_out_if_trained(path, engine.card.get("labelled_sets"), engine.card.get("training_config") or {})
        shown = name if held is None else f"{name} (the model was fine-tuned on all but the held-out images)"
        real_rows.append([shown, str(r["n"]), f"**{pct(r['accuracy'])}**", str(r["refused"]),
                          *before_cells(base, "real", name), f"{r['ms']:.2f}"])
        if held is not None and held.any():
            accuracy = float((r["pred"][held] == labels[held]).mean())  # a refused image (-1) counts as wrong
            figures["real"][name]["held_out"] = {"n": int(held.sum()), "accuracy": accuracy}
            real_rows.append([f"{name}, held-out images only", str(int(held.sum())), f"**{pct(accuracy)}**",
                              str(int((r["pred"][held] == -1).sum())), "", "", ""])
        if not name.startswith("cvl"):  # CVL's images are for research use: none in the repository's pictures
            failures += [(name, data[i], r["digits"][i], int(labels[i]), int(r["pred"][i])) for i in r["wrong"][:16]]

    scene_rows, scene_set = [], real_sets(Path(args.real_dir)).get(SCENE_SET)
    if scene_set is not None:
        data, labels = read_labelled(scene_set)
        for r in in_scenes(engine, data, labels, args.per_kind):
            figures.setdefault("scenes", {})[r["kind"]] = {k: r[k] for k in ("n", "accuracy", "refused", "ms")}
            scene_rows.append([r["kind"], str(r["n"]), f"**{pct(r['accuracy'])}**", str(r["refused"]), f"{r['ms']:.2f}"])

    x, y = load_test_split(args.data_dir)
    pngs = [to_png(d) for d in x]
    r = score(engine, pngs, y)
    raw = float((predict(engine, x) == y).mean())
    unchanged = float(np.mean([np.array_equal(a, b) for a, b in zip(r["digits"], x, strict=True)]))
    figures["mnist"]["test as PNG"] = {k: r[k] for k in ("n", "accuracy", "refused", "ms")} | {"raw": raw}
    mnist_row = ["MNIST test split as PNGs", str(r["n"]), f"**{pct(r['accuracy'])}**", str(r["refused"]),
                 *before_cells(base, "mnist", "test as PNG"), f"{r['ms']:.2f}"]

    kind_rows = []
    for r in measure(engine, x, y, args.per_kind):
        figures["kinds"][r["kind"]] = {k: r[k] for k in ("n", "accuracy", "refused", "ms", "without")}
        kind_rows.append([r["kind"], str(r["n"]), f"**{pct(r['accuracy'])}**", str(r["refused"]),
                          *before_cells(base, "kinds", r["kind"]), pct(r["without"]), f"{r['ms']:.2f}"])
        failures += [(r["kind"], r["data"][i], r["digits"][i], int(r["labels"][i]), int(r["pred"][i]))
                     for i in r["wrong"][:4]]

    empty_rows = []
    for r in refusals(args.per_kind):
        figures["empty"][r["kind"]] = {"n": r["n"], "refused": r["refused"]}
        b = base.get("empty", {}).get(r["kind"])
        empty_rows.append([r["kind"], str(r["n"]), f"**{r['refused']}**", "" if b is None else str(b["refused"])])

    if args.montage:
        montage(failures, Path(args.montage))
    lines = [
        "# Robustness: real scans and photos through the front end",
        "",
        f"Model `{engine.model['architecture']}` version `{engine.model['version']}`. Accuracy counts a refused",
        "image (`no_digit_found` or any other error) as wrong. *Before* is the front end this replaced",
        "(median/MAD statistics in NumPy, with the model of its time, a47ff4ea76a1: `--baseline`); *after* is `digitflow/frontend` (OpenCV).",
        "CPU ms is per image on this machine (decode + front end, one process).",
        "",
        "## Real labelled sets (writers and scanners the model never saw)",
        "",
        "| set | images | accuracy | refused | before | refused before | CPU ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *("| " + " | ".join(row) + " |" for row in real_rows),
        "",
        *([f"## Real writers in photographed scenes ({SCENE_SET}: {args.per_kind} of its digits)",
           "",
           "Each digit's own scan, then its ink (the scan's darkness above its paper) drawn into a generated scene",
           "of `scripts/distortions.py`, as the MNIST digits below are.",
           "",
           "| scene | images | accuracy | refused | CPU ms |",
           "| --- | --- | --- | --- | --- |",
           *("| " + " | ".join(row) + " |" for row in scene_rows),
           ""] if scene_rows else []),
        "## MNIST test digits sent as PNG files",
        "",
        f"The model on the raw test arrays: {pct(figures['mnist']['test as PNG']['raw'])}; the front end leaves "
        f"{pct(unchanged)} of the digits byte for byte unchanged (already 28x28, fitted and centred).",
        "",
        "| input | images | accuracy | refused | before | refused before | CPU ms |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        "| " + " | ".join(mnist_row) + " |",
        "",
        "## Generated conditions (MNIST test digits made to look like uploads; `scripts/distortions.py`)",
        "",
        f"{args.per_kind} seeded test digits per condition. *Without* = the image turned grey and squashed to",
        "28x28 as it is (no front end).",
        "",
        "| condition | images | accuracy | refused | before | refused before | without | CPU ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
        *("| " + " | ".join(row) + " |" for row in kind_rows),
        "",
        "## Images with no digit (must be refused as `no_digit_found`)",
        "",
        "| kind | images | refused | refused before |",
        "| --- | --- | --- | --- |",
        *("| " + " | ".join(row) + " |" for row in empty_rows),
        "",
        "Notes. Conditions draw their parameters from ranges (line thickness, spacing and skew, light falloff,",
        "pen width, ...), so a front end tuned to one setting does not pass. Three conditions (stained paper,",
        "chalk on a blackboard, a small digit in a photo of a sheet) were first run as checks the front end had",
        "not been developed on; stained paper then read 88.7%, which led to judging uneven light at a quarter",
        "of the image instead of a half. The bold-marker strokes span a fifth to a third of the digit's height;",
        "an earlier, bolder setting filled the loops in so that people could not read the digits either.",
        "A tight 16x16 crop of a plain upright 1 stretched to its box is solid ink: it is refused as blank.",
        "A sheet on a desk (a note or sheet, 8-40% of the frame, turned up to 30 degrees, on a plain or",
        "wood-grained desk) read 8.75% of 400 MNIST digits before `frontend/sheet.py` (the sheet itself was",
        "taken for the digit) and no blank sheet was refused; it was developed on that generator and checked on",
        "one made differently (CVL digits on sheets over the frame's edge and on light, wavy desks): 95-97%,",
        "against 97.0% for the same digits as scanned.",
        "",
        f"Remaining failures as pictures (upload, what the model saw, truth, reading; Semeion and generated "
        f"conditions only: CVL's images may not be carried in the project): "
        f"[{Path(args.montage).name}]({Path(args.montage).name}).",
        "",
        f"Command: `python scripts/robustness.py --per-kind {args.per_kind}"
        + (f" --baseline {os.path.relpath(args.baseline, ROOT)}" if args.baseline else "")
        + f"` ({time.time() - t0:.0f} s).",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    if args.save_json:
        Path(args.save_json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
