"""Where an algorithm registers itself, once: its typed config and its class, in its own file.

Each module of ``rlrun/algos/`` that defines ``REGISTRATION = Registration(...)`` is an algorithm,
named by its file (``rlrun/algos/trpo.py`` is ``algo=trpo``). :func:`algorithms` finds them; from
that one table come the Hydra ``algo`` config group, the range checks, the HParams column and the
custom-scalar charts. Adding an algorithm is one file (and its test, and tuned YAML if any).

Every config field is a :func:`knob`: a default, a one-line doc naming its source, and the range
check that a type cannot express, kept beside the value it checks.
"""

from __future__ import annotations

import ast
import functools
import importlib
import math
import pkgutil
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Optional

from rlrun.errors import ConfigError


@dataclass(frozen=True)
class Check:
    """A range a value must lie in, and how the error message says so."""

    ok: Callable[[Any], bool]
    allowed: str


POSITIVE = Check(lambda v: v > 0 and math.isfinite(v), "must be > 0")
NON_NEGATIVE = Check(lambda v: v >= 0 and math.isfinite(v), "must be >= 0")
AT_LEAST_ONE = Check(lambda v: v >= 1, "must be >= 1")
FINITE = Check(math.isfinite, "must be finite")
ABOVE_ONE = Check(lambda v: v > 1, "must be > 1")
FRACTION_OPEN = Check(lambda v: 0 < v < 1, "must be in (0, 1)")  # 0 < x < 1
FRACTION_CLOSED = Check(lambda v: 0 <= v <= 1, "must be in [0, 1]")


def one_of(*options: str) -> Check:
    return Check(lambda v: v in options, f"one of {', '.join(options)}")


def knob(default: Any, doc: str, check: Check | None = None) -> Any:
    """A config field: its default, what it is and where the value comes from, and its range.
    ``None`` (for Optional fields) always passes the check."""
    metadata = {"doc": doc, "check": check}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class AlgoConfig:
    """What every algorithm shares: rollout length, advantage estimation, networks."""

    name: str = knob("???", "the algorithm, set by its registration")
    n_steps: int = knob(2048, "rollout length T per env per iteration (PPO paper's MuJoCo T)", AT_LEAST_ONE)
    gamma: float = knob(0.99, "discount factor", Check(lambda v: 0 < v <= 1, "must be in (0, 1]"))
    gae_lambda: float = knob(0.95, "GAE lambda (Schulman et al. 2016); 1.0 gives Monte-Carlo returns", FRACTION_CLOSED)
    normalize_advantage: bool = knob(True, "standardise the advantages of each batch (PPO paper, Baselines)")
    hidden_sizes: list[int] = knob([64, 64], "hidden layers of the actor and of the critic (PPO/TRPO papers)",
                                   Check(lambda v: all(size >= 1 for size in v),
                                         "every layer size must be >= 1 ([] is a linear policy)"))
    activation: str = knob("tanh", "hidden activation (PPO/TRPO papers: tanh)", one_of("tanh", "relu"))
    log_std_init: float = knob(0.0, "Box actions: initial state-independent log std (SB3: 0)", FINITE)
    ortho_init: bool = knob(True, "orthogonal initialisation, gain sqrt(2) inside, 0.01 policy / 1 value output (Baselines)")
    encoder: str = knob("auto", "observations: auto (an MLP on flat ones; images: nature_cnn from 36 pixels a side, "
                        "small_cnn below), mlp, nature_cnn (Mnih et al. 2015), small_cnn (MinAtar's)",
                        one_of("auto", "mlp", "nature_cnn", "small_cnn"))
    cnn_features: Optional[int] = knob(None, "the CNN's fully connected width; None: nature_cnn 512, small_cnn 128",
                                       AT_LEAST_ONE)


def check_fields(cfg: Any, schema: type, prefix: str) -> None:
    """Every field's range check on ``cfg`` (a config node or dataclass of ``schema``); raises
    ConfigError naming the first bad key (``<prefix>.<field>``)."""
    for f in fields(schema):
        check = f.metadata.get("check")
        value = getattr(cfg, f.name)
        if check is not None and value is not None and not check.ok(value):
            shown = list(value) if not isinstance(value, (int, float, str)) else value
            raise ConfigError(f"{prefix}.{f.name}={shown!r} is not allowed: {check.allowed}")


@dataclass(frozen=True)
class Registration:
    """One algorithm, as the rest of rlrun sees it.

    Args:
        config: its typed hyperparameters, an :class:`AlgoConfig` whose fields are knobs.
        algorithm: ``algorithm(config, actor, critic, seed)``, with ``update(batch, progress) ->
            metrics`` and ``state_dict()`` / ``load_state_dict()`` of its own state.
        title: its name in charts and tables (``PPO-Clip``).
        summary: one line for ``rlrun --help``.
        trust_region_key: the config field of its trust-region knob, the HParams column
            ``trust_region`` shared by all algorithms (None: it has none).
        headline: its own tags written again under ``TrustRegion/`` (``{"trpo/max_kl": "kl_bound"}``).
        charts: its custom-scalars charts, title -> tags; ``<name>/kl`` (the exact policy KL) can be used.
    """

    config: type
    algorithm: type
    title: str
    summary: str
    trust_region_key: Optional[str] = None
    headline: dict[str, str] = field(default_factory=dict)
    charts: dict[str, list[str]] = field(default_factory=dict)


@functools.cache
def algorithms() -> dict[str, Registration]:
    """Every algorithm under ``rlrun/algos/``, by name (its module's name), in name order."""
    package = importlib.import_module(__package__)
    found = {}
    for module in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        registration = getattr(importlib.import_module(f"{__package__}.{module.name}"), "REGISTRATION", None)
        if isinstance(registration, Registration):
            found[module.name] = registration
    return found


def catalogue() -> dict[str, tuple[str, list[str]]]:
    """name -> (its registration's ``summary``, ``key=default`` of its own knobs), read from the
    algorithm files' source without importing them (``rlrun --help`` answers without torch)."""
    out = {}
    for path in sorted(Path(__file__).parent.glob("*.py")):
        tree = ast.parse(path.read_text())
        registration = next((node.value for node in tree.body if isinstance(node, ast.Assign)
                             and any(getattr(t, "id", None) == "REGISTRATION" for t in node.targets)), None)
        if not isinstance(registration, ast.Call):
            continue
        summary = next((ast.literal_eval(k.value) for k in registration.keywords if k.arg == "summary"), "")
        knobs = []
        for node in tree.body:
            if isinstance(node, ast.ClassDef) and any(getattr(b, "id", None) == "AlgoConfig" for b in node.bases):
                for item in node.body:
                    if (isinstance(item, ast.AnnAssign) and isinstance(item.value, ast.Call)
                            and getattr(item.value.func, "id", None) == "knob" and item.target.id != "name"):
                        default = item.value.args[0]
                        shown = default.value if isinstance(default, ast.Constant) else ast.unparse(default).replace(" ", "")
                        knobs.append(f"{item.target.id}={shown}")
        out[path.stem] = (summary, knobs)
    return out
