"""Behaviour pinned against refactoring: for each algorithm, a short CartPole-v1 and a
short Pendulum-v1 run (a few iterations, seed 0) must give bit-identical final parameters and
non-wall-clock scalars to the recorded ones in tests/golden/. A change that alters them on
purpose re-records them and says which runs changed and why:

    python -m tests.test_golden --compare   # the largest relative difference per tag
    python -m tests.test_golden --record

Recorded with torch 2.13.0 (CPU) on the project's 2-core machine. Float results differ between
torch versions, between the CPU kernels torch picks (AVX2 or AVX512 matrix products round
differently) and between processors with the same kernels (an Intel and an AMD AVX512 machine
differ from the first iterations), so each recording names all three, and the test skips, naming
them, on another machine.
"""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.provenance import cpu_model
from tests.conftest import RLRUN, read_scalars

from rlrun.algos.registry import algorithms

GOLDEN = Path(__file__).resolve().parent / "golden"
REPO = GOLDEN.parent.parent
DEFAULT_SMALL = ["algo.n_steps=64", "env.num_envs=4", "total_steps=1024"]  # an algorithm not listed below
SMALL = {  # a few iterations each, with several minibatch / line-search / K-FAC steps
    "ppo_clip": ["algo.n_steps=64", "env.num_envs=4", "total_steps=1024", "algo.batch_size=64", "algo.n_epochs=3"],
    "trpo": ["algo.n_steps=128", "env.num_envs=2", "total_steps=1024", "algo.critic_epochs=2"],
    "ppo_penalty": ["algo.n_steps=64", "env.num_envs=4", "total_steps=1024", "algo.policy_epochs=3",
                    "algo.critic_epochs=3"],
    "acktr": ["algo.n_steps=32", "env.num_envs=4", "total_steps=1024"],
    "a2c": ["algo.n_steps=5", "env.num_envs=4", "total_steps=1000", "log_every=1"],
}
CASES = [(algo, env) for algo in algorithms() for env in ("CartPole-v1", "Pendulum-v1")]  # every registered one


def recording_key() -> tuple[str, str, str]:
    """What a recording must match: torch's version, its CPU kernels, the processor model."""
    return torch.__version__, torch.backends.cpu.get_cpu_capability(), cpu_model()


def run_case(algo: str, env: str, run_dir: Path) -> dict:
    """The run's parameter digest and every scalar but the wall-clock time/* ones."""
    done = subprocess.run([*RLRUN, f"algo={algo}", f"env={env}", "seed=0", "progress=off", "torch_threads=1",
                           *SMALL.get(algo, DEFAULT_SMALL), f"hydra.run.dir={run_dir}"], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=False)
    digest = hashlib.sha256()
    for part in ("actor", "critic"):
        for key, tensor in sorted(ckpt[part].items()):
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    scalars = {tag: series for tag, series in sorted(read_scalars(run_dir).items()) if not tag.startswith("time/")}
    version, kernels, model = recording_key()
    return {"torch": version, "cpu": kernels, "cpu_model": model, "params_sha256": digest.hexdigest(), "scalars": scalars}


@pytest.mark.parametrize("algo, env", CASES, ids=[f"{a}-{e}" for a, e in CASES])
def test_short_runs_are_bit_identical_to_the_recorded_ones(tmp_path, algo, env):
    recorded = GOLDEN / f"{algo}_{env}.json"
    assert recorded.is_file(), f"no recorded run of {algo} on {env}: python -m tests.test_golden --record"
    golden = json.loads(recorded.read_text())
    recorded_on, here = (golden["torch"], golden["cpu"], golden.get("cpu_model")), recording_key()
    if recorded_on != here:
        pytest.skip("recorded with torch {} on {} kernels of an {}; this is torch {} on {} kernels of an {}".format(
            *recorded_on, *here))
    now = run_case(algo, env, tmp_path / "run")
    assert sorted(now["scalars"]) == sorted(golden["scalars"])
    for tag, series in golden["scalars"].items():
        assert [tuple(p) for p in now["scalars"][tag]] == [tuple(p) for p in series], tag
    assert now["params_sha256"] == golden["params_sha256"]


def largest_differences(golden: dict, now: dict) -> dict[str, float]:
    """Per tag, the largest relative difference between the recorded and the new values (0: identical)."""
    out = {}
    for tag, series in golden["scalars"].items():
        pairs = zip([v for _, v in series], [v for _, v in now["scalars"].get(tag, [])])
        out[tag] = max((abs(a - b) / max(abs(a), abs(b), 1e-12) for a, b in pairs), default=float("nan"))
    return out


if __name__ == "__main__" and {"--record", "--compare"} & set(sys.argv):
    # --compare: each case's largest relative difference per tag against the recorded run (what a
    # re-recording changes); --record: write the new runs as the recorded ones.
    import tempfile

    GOLDEN.mkdir(exist_ok=True)
    for algo, env in CASES:
        with tempfile.TemporaryDirectory() as tmp:
            result = run_case(algo, env, Path(tmp) / "run")
        recorded = GOLDEN / f"{algo}_{env}.json"
        if "--compare" in sys.argv and recorded.is_file():
            golden = json.loads(recorded.read_text())
            changed = {tag: diff for tag, diff in largest_differences(golden, result).items() if diff != 0}
            same = result["params_sha256"] == golden["params_sha256"]
            print(f"{algo} {env}: parameters {'identical' if same else 'differ'}; "
                  + (", ".join(f"{tag} {diff:.1e}" for tag, diff in sorted(changed.items())) or "every tag identical"))
        if "--record" in sys.argv:
            recorded.write_text(json.dumps(result, indent=1) + "\n")
            print(f"recorded {algo} {env}: {result['params_sha256'][:12]}, {len(result['scalars'])} tags")
