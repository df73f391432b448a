"""Benchmark: generate the full-size synthetic twin (500 + 153 profiles, photo-sized images) and time the validation
pass of validate_data over every folder the study uses (manifest, images decoded, joins, names), with the
validating process's peak memory.

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

def load(root: Path) -> dict:
    """The validation pass validate_data runs (manifest, every folder with every image decoded, joins, splits,
    names), and the manifest check alone for comparison."""
    from mmunlearn.data import manifest
    from mmunlearn.data.validate import validate

    out = {}
    t0 = time.perf_counter()
    manifest.verify(root)
    out["verify_manifest_s"] = round(time.perf_counter() - t0, 2)
    t0 = time.perf_counter()
    facts = validate(root, names_required=True, corpora=("Pretrain_Set",))
    out["validate_s"] = round(time.perf_counter() - t0, 2)
    out["rows"] = sum(f["rows"] for f in facts["report"].values())
    out["named"] = sum(n is not None for n in facts["names"].values())
    assert not any(f["skipped"] for f in facts["report"].values())
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
