"""Benchmark: generate the full-size synthetic twin (500 + 153 profiles, photo-sized images) and time reading and
validating every folder the study uses, with the reading process's peak memory.

    python bench/load_data.py [--image-size 512] [--out DIR] [--keep]

Generation runs in this process; loading runs in a fresh child process so that its peak RSS is its own.
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

FOLDERS = ["MLLMU-Bench/" + f for f in ("ft_Data", "Full_Set", "Test_Set", "Retain_Set", "forget_5", "forget_10",
                                        "forget_15", "retain_95", "retain_90", "retain_85")] + \
          ["baseline_train_split/" + f for f in ("forget_5", "forget_10", "forget_15", "retain_95", "retain_90",
                                                 "retain_85")]


def load(root: Path) -> dict:
    from mmunlearn.data import manifest
    from mmunlearn.data.schema import read_benchmark_folder, read_training_folder

    out = {}
    t0 = time.perf_counter()
    manifest.verify(root)
    out["verify_manifest_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    rows = 0
    for folder in FOLDERS:
        reader = read_training_folder if folder.startswith("baseline") or folder.endswith("ft_Data") else read_benchmark_folder
        profiles, reports = reader(root / folder)
        rows += len(profiles)
        assert not any(r.skipped for r in reports), folder
    out["read_and_validate_s"] = round(time.perf_counter() - t0, 2)
    out["rows"] = rows
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--image-size", type=int, default=512)
    ap.add_argument("--image-noise", type=float, default=6.0)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--load-only", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.load_only:
        print(json.dumps(load(args.load_only)))
        return
    from mmunlearn.data.fetch import prepare

    base = args.out or Path(tempfile.mkdtemp(prefix="mmunlearn-bench-"))
    root = base / "twin"
    t0 = time.perf_counter()
    prepare({"source": "synthetic", "synthetic": {"image_size": args.image_size, "image_noise": args.image_noise}},
            root)
    gen_s = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in root.rglob("*") if p.is_file())
    child = subprocess.run([sys.executable, __file__, "--load-only", str(root)], capture_output=True, text=True,
                           check=True)
    result = {"profiles": "500 + 153", "image_size": args.image_size, "generate_s": round(gen_s, 1),
              "data_mb": round(size / 2**20), **json.loads(child.stdout.strip().splitlines()[-1]), "root": str(root)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
