"""TRPO's Fisher-vector products for S seeds: one batched pass over all seeds (their actors the
rows of one ``FlatParameters``) against each seed's own pass, at growing batch sizes.

    python benchmarks/fisher_products.py            # 8 seeds, CartPole-sized 64x64 tanh actors, 1 thread

Both are ``rlrun.core.written_fisher.fisher_vector_product`` (tested equal); printed: the
milliseconds of one product of all seeds each way, the best of 30. Where the batched pass gets
the slower one is where TRPO's batched update switches to seed by seed on a CPU
(``rlrun.algos.trpo.STACKED_FISHER_SAMPLES``). Written to
``benchmarks/results/speed/fisher_products.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rlrun.core.flat_params import FlatParameters  # noqa: E402
from rlrun.core.written_fisher import fisher_vector_product  # noqa: E402
from rlrun.networks import CategoricalActor  # noqa: E402
from provenance import ROOT, git_commit, machine  # noqa: E402  (this folder is on sys.path when run as a script)
from update_cost import best_seconds  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "speed" / "fisher_products.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--batches", type=int, nargs="+", default=[64, 256, 512, 1024, 2048, 4096])
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows = []
    print(f"{args.seeds} seeds, CategoricalActor(4 -> 64 -> 64 -> 2, tanh), 1 thread; ms a product of all seeds")
    print(f"{'batch a seed':>12} {'samples':>8} {'seed by seed':>13} {'batched':>8}")
    for batch in args.batches:
        torch.manual_seed(0)
        actors = [CategoricalActor(4, 2, [64, 64], "tanh", True) for _ in range(args.seeds)]
        obs = torch.randn(args.seeds, batch, 4)
        alone = [fisher_vector_product(actor, rows, 0.1) for actor, rows in zip(actors, obs)]
        stacked = FlatParameters.stacked([list(actor.parameters()) for actor in actors])
        together = fisher_vector_product(actors[0], obs, 0.1, stacked=stacked)
        v = torch.randn(stacked.vector.shape)
        seed_by_seed = 1000 * best_seconds(lambda: [product(row) for product, row in zip(alone, v)], repeats=30)
        batched = 1000 * best_seconds(lambda: together(v), repeats=30)
        rows.append({"batch_a_seed": batch, "samples": args.seeds * batch, "seed_by_seed_ms": round(seed_by_seed, 3),
                     "batched_ms": round(batched, 3)})
        print(f"{batch:>12} {args.seeds * batch:>8} {seed_by_seed:>13.2f} {batched:>8.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "command": "python benchmarks/fisher_products.py", "seeds": args.seeds, "rows": rows,
        "commit": git_commit(), "machine": machine(), "date": datetime.date.today().isoformat()}, indent=1) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
