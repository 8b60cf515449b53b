"""MkDocs hook: the tables whose figures come from the repository, filled in at build time.

A page asks for one with a marker on a line of its own; nothing in these tables is typed by hand:

    <!-- rlrun:results <folder under benchmarks/results> [algo] -->  runs of benchmarks/grid.py
    <!-- rlrun:speed -->          the judged ratios against SB3 (speed/vs_sb3_suite.json)
    <!-- rlrun:update-cost -->    update time per iteration beside its floor (speed/update_cost.json)
    <!-- rlrun:batched-seeds -->  a sweep's seeds: batched launcher vs basic and joblib (speed/batched_*.json,
                                  speed/update_cost_stacked.json)
    <!-- rlrun:fisher-products --> TRPO's Fisher products of a group's seeds, batched vs seed by seed
    <!-- rlrun:random-policy -->  a uniformly random policy's return per env (random_policy.json)
    <!-- rlrun:experiments -->    each folder of experiments/: what it tried, how, and its runs
    <!-- rlrun:generic-defaults --> untuned runs beside SB3's defaults (benchmarks/generic_defaults.py)
    <!-- rlrun:knobs <algo> -->   the algorithm's config: key, default, allowed range, what it is
    <!-- rlrun:charts <algo> -->  its CUSTOM SCALARS charts and their tags

The results tables are ``benchmarks/table.py``'s (the same function prints them on a terminal).
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import MISSING, fields
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
MARKER = re.compile(r"^<!-- rlrun:([\w-]+)((?: [^ >]+)*) -->$", re.MULTILINE)


def _on_path() -> None:
    """benchmarks/ and the repository on sys.path (MkDocs restores sys.path after loading a hook)."""
    for path in (str(ROOT), str(ROOT / "benchmarks")):
        if path not in sys.path:
            sys.path.insert(0, path)


def _random_returns() -> dict[str, float]:
    return {env: r["mean"] for env, r in json.loads((RESULTS / "random_policy.json").read_text()).items()}


def _summaries(folder: Path) -> dict[tuple[str, str], list[dict]]:
    """{(algo, env): each seed's summary.json}, seeds in order."""
    runs: dict[tuple[str, str], list[dict]] = {}
    for path in sorted(folder.glob("**/seed*/summary.json")):
        summary = json.loads(path.read_text())
        runs.setdefault((summary["algo"], summary["env"]), []).append(summary)
    return {key: sorted(rows, key=lambda r: r["seed"]) for key, rows in runs.items()}


def results(folder: str, algo: str | None = None) -> str:
    """A grid suite's table (benchmarks/table.py) or, for an experiment's runs, per-seed returns."""
    import table
    from grid import SUITES

    path = RESULTS / folder
    if not path.is_dir():
        raise ValueError(f"rlrun:results names {path}, which does not exist")
    # a suite's folder, or one of its variants named <suite>-zoo (the same grid with tuned=zoo)
    zoo = path.name.endswith("-zoo")
    suite = path.name.removesuffix("-zoo")
    if suite in SUITES and all((p.parent / "eval.json").is_file() for p in path.glob("**/seed*/summary.json")):
        runs = {key: rows for key, rows in table.load(path).items() if algo is None or key[0] == algo}
        if not runs:
            return f"*No {algo} runs in `benchmarks/results/{folder}/` yet.*"
        records = [r for rs in runs.values() for r in rs]
        nonfinite = sum(r["nonfinite"] or 0 for r in records)
        return (table.table(runs, _random_returns(), SUITES[suite], published=not zoo) +
                f"\n\n{len(records)} runs, from `benchmarks/results/{folder}/`; NaN/inf values in their logged "
                f"scalars: {nonfinite}.")
    lines = ["| algo | env | steps | seeds | final return (per seed) | mean [95% CI] | median solved step |",
             "|---|---|---|---|---|---|---|"]
    from rlrun.report import BOOTSTRAP_SEED, bootstrap_ci

    for (name, env), rows in _summaries(path).items():
        if algo is not None and name != algo:
            continue
        finals = [r["final_return"] for r in rows]
        low, high = bootstrap_ci(finals, np.random.default_rng(BOOTSTRAP_SEED))
        solved = [r["solved_step"] for r in rows if r.get("solved_step") is not None]
        lines.append(f"| {name} | {env} | {table.steps(max(r['steps_done'] for r in rows))} | "
                     f"{','.join(str(r['seed']) for r in rows)} | {' / '.join(f'{v:.0f}' for v in finals)} | "
                     f"{np.mean(finals):.0f} [{low:.0f}, {high:.0f}] | "
                     f"{table.steps(float(np.median(solved))) + f' ({len(solved)} of {len(rows)})' if solved else '-'} |")
    return "\n".join(lines) + f"\n\nFrom `benchmarks/results/{folder}/`."


def speed() -> str:
    data = json.loads((RESULTS / "speed" / "vs_sb3_suite.json").read_text())
    lines = ["| comparison | rlrun | peer | ratio | target | |", "|---|---|---|---|---|---|"]
    for row in data["summary"]:
        unit = {"solved_wall_s": "s to solve", "fps": "steps/s", "cpu_s": "CPU s", "wall_s": "s"}[row["key"]]
        digits = 0 if row["key"] == "fps" else 2
        lines.append(f"| {row['label']} | {row['rlrun']:.{digits}f} {unit} | {row['peer']:.{digits}f} "
                     f"({row['peer_name']}) | {row['ratio']:.2f} | {row['target']} | "
                     f"{'met' if row['met'] else '**not met**'} |")
    return ("\n".join(lines) + f"\n\nMeasured on {data['date']} at commit `{data['commit'][:7]}` on a machine with "
            f"{data['cpus']} cores (`benchmarks/results/speed/vs_sb3_suite.json`, every run's figures).")


def update_cost() -> str:
    data = json.loads((RESULTS / "speed" / "update_cost.json").read_text())
    lines = [f"| algorithm | before (`{data['before']['commit']}`) | after (`{data['after']['commit']}`) | floor |",
             "|---|---|---|---|"]
    for algo in data["floor"]:
        lines.append(f"| {algo} | {data['before'][algo] * 1e3:.1f} ms | {data['after'][algo] * 1e3:.1f} ms | "
                     f"{data['floor'][algo] * 1e3:.1f} ms |")
    return "\n".join(lines) + f"\n\n{data['what']}; {data['machine']}, {data['date']} (`{data['command']}`)."


def batched_seeds() -> str:
    """benchmarks/batched_seeds.py's sweeps and update_cost.py --seeds' per-seed update cost."""
    files = sorted((RESULTS / "speed").glob("batched_*.json"))
    if not files:
        return "*Not measured yet: `python benchmarks/batched_seeds.py`.*"
    lines = ["| sweep | basic | joblib | batched | batched / faster other | solved (basic, joblib, batched) "
             "| returns alike (p) | env.step share |", "|---|---|---|---|---|---|---|---|"]
    machines = set()
    for path in files:
        data = json.loads(path.read_text())
        machines.add(data.get("machine", "machine not recorded"))
        runs = data["launchers"]
        wall = {name: f"{runs[name]['wall_s']:.0f} s" if name in runs else "-" for name in ("basic", "joblib", "batched")}
        solved = ", ".join(str(runs[name]["solved"]) if name in runs else "-" for name in ("basic", "joblib", "batched"))
        repeats = data.get("repeats", 1)
        what = data["what"] + (f"; wall times the median of {repeats} runs each, taken in turn" if repeats > 1 else "")
        lines.append(f"| {what} | {wall['basic']} | {wall['joblib']} | {wall['batched']} | "
                     f"{data.get('batched_over_fastest_other', float('nan')):.2f} | {solved} | "
                     f"{data.get('same_returns_p_value', float('nan')):.2f} | "
                     f"{data.get('env_step_share_of_batched', float('nan')):.0%} |")
    text = "\n".join(lines) + ("\n\n(`benchmarks/results/speed/batched_*.json`, each with its commands, date and "
                               f"machine: {'; '.join(sorted(machines))}.)")
    stacked = RESULTS / "speed" / "update_cost_stacked.json"
    if stacked.is_file():
        data = json.loads(stacked.read_text())
        rows = ["| algorithm | alone | a seed of the stack | ratio | floor |", "|---|---|---|---|---|"]
        for r in data["rows"]:
            floor = "-" if r["floor_s"] is None else f"{r['floor_s'] * 1e3:.1f} ms"
            rows.append(f"| {r['algo']} | {r['alone_s'] * 1e3:.1f} ms | {r['stacked_per_seed_s'] * 1e3:.1f} ms | "
                        f"{r['stacked_over_alone']:.2f} | {floor} |")
        where = f"; {data['machine']}" if "machine" in data else ""
        text += "\n\n" + "\n".join(rows) + f"\n\n{data['what']}{where}, {data.get('date', '')} (`{data.get('command', '')}`)."
    return text


def fisher_products() -> str:
    """benchmarks/fisher_products.py: TRPO's Fisher products of S seeds, one batched pass against seed by seed."""
    path = RESULTS / "speed" / "fisher_products.json"
    if not path.is_file():
        return "*Not measured yet: `python benchmarks/fisher_products.py`.*"
    data = json.loads(path.read_text())
    lines = ["| samples a seed | all seeds' samples | seed by seed | one batched pass |", "|---|---|---|---|"]
    for row in data["rows"]:
        lines.append(f"| {row['batch_a_seed']} | {row['samples']} | {row['seed_by_seed_ms']:.2f} ms | "
                     f"{row['batched_ms']:.2f} ms |")
    return "\n".join(lines) + (f"\n\n{data['seeds']} seeds; {data['machine']}, {data['date']}, commit "
                               f"`{data['commit']}` (`{data['command']}`).")


def random_policy() -> str:
    lines = ["| env | mean return | episodes |", "|---|---|---|"]
    for env, r in json.loads((RESULTS / "random_policy.json").read_text()).items():
        lines.append(f"| {env} | {r['mean']:.1f} | {r['episodes']} |")
    return "\n".join(lines)


def experiments() -> str:
    """One section per folder of benchmarks/results/experiments/: the ``what`` and ``command`` its
    JSON files record, and the per-seed table of its runs where it holds grid runs."""
    sections = []
    for folder in sorted(p for p in (RESULTS / "experiments").iterdir() if p.is_dir()):
        parts = [f"### {folder.name}", ""]
        for path in sorted(folder.glob("*.json")):
            data = json.loads(path.read_text())
            what = data.get("what") or data.get("note")
            parts.append(f"`{path.relative_to(ROOT)}`" + (f": {what}" if what else ""))
            if data.get("command"):
                parts += ["", f"```bash\n{data['command']}\n```"]
            parts.append("")
        if any(folder.glob("**/seed*/summary.json")):
            parts += [results(f"experiments/{folder.name}"), ""]
        sections.append("\n".join(parts))
    return "\n".join(sections)


def generic_defaults() -> str:
    import generic_defaults as runs

    return runs.updates_table() + "\n\n" + runs.table(RESULTS / "generic-defaults")


def _shown(value) -> str:
    return "`null`" if value is None else f"`{json.dumps(value) if isinstance(value, (list, bool)) else value}`"


def knobs(algo: str) -> str:
    from rlrun.algos.registry import AlgoConfig, algorithms

    shared = {f.name for f in fields(AlgoConfig)}
    config = algorithms()[algo].config
    lines = ["| key | default | allowed | what it is, and where the default comes from |", "|---|---|---|---|"]
    for f in sorted(fields(config), key=lambda f: f.name in shared):
        if f.name == "name":
            continue
        default = f.default_factory() if f.default is MISSING else f.default
        check = f.metadata.get("check")
        doc = f.metadata.get("doc", "").replace("|", "\\|")
        lines.append(f"| `algo.{f.name}` | {_shown(default)} | {check.allowed if check else ''} | {doc} |")
    return "\n".join(lines)


def charts(algo: str) -> str:
    from rlrun.algos.registry import algorithms

    registration = algorithms()[algo]
    lines = ["| chart | tags |", "|---|---|"]
    for title, tags in registration.charts.items():
        lines.append(f"| {title} | {', '.join(f'`{t}`' for t in tags)} |")
    return "\n".join(lines)


def headline() -> str:
    """The README's small table: each algorithm's mean deterministic evaluation on MuJoCo at 1M
    steps (3 seeds), with the figure it is judged against."""
    import table
    from grid import SUITES

    runs = table.load(RESULTS / "mujoco-1m")
    envs = SUITES["mujoco-1m"]
    lines = ["| algorithm | " + " | ".join(envs) + " |", "|---|" + "---|" * len(envs)]
    for algo, title in table.ALGO_NAMES.items():
        cells = [f"{np.mean([r['eval'] for r in runs[(algo, env)]]):.0f}" if (algo, env) in runs else "-" for env in envs]
        if any(c != "-" for c in cells):
            lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


README_BLOCK = re.compile(r"(<!-- rlrun:headline:start -->\n).*?(<!-- rlrun:headline:end -->)", re.DOTALL)


def readme_with_headline(readme: str) -> str:
    """README.md with its generated block (between the headline markers) rebuilt."""
    _on_path()
    return README_BLOCK.sub(lambda m: m.group(1) + headline() + "\n" + m.group(2), readme)


MAKERS = {"results": results, "speed": speed, "update-cost": update_cost, "batched-seeds": batched_seeds,
          "fisher-products": fisher_products, "random-policy": random_policy,
          "experiments": experiments, "generic-defaults": generic_defaults, "knobs": knobs, "charts": charts}


def on_page_markdown(markdown: str, page, config, files) -> str:
    _on_path()

    def fill(match: re.Match) -> str:
        name, args = match.group(1), match.group(2).split()
        if name not in MAKERS:
            raise ValueError(f"{page.file.src_path}: unknown marker rlrun:{name} (known: {', '.join(MAKERS)})")
        return MAKERS[name](*args)

    return MARKER.sub(fill, markdown)


if __name__ == "__main__":  # python docs/hooks.py: rebuild README.md's generated table
    readme = ROOT / "README.md"
    readme.write_text(readme_with_headline(readme.read_text()))
    print(f"wrote {readme}")
