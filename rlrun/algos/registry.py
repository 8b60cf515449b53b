"""Where an algorithm registers itself, once: its typed config and its class, in its own file.

Each module of ``rlrun/algos/`` that defines ``REGISTRATION = Registration(...)`` is an algorithm,
named by its file (``rlrun/algos/trpo.py`` is ``algo=trpo``). :func:`algorithms` finds them; from
that one table come the Hydra ``algo`` config group, the range checks, the HParams column and the
custom-scalar charts. Adding an algorithm is one file (and its test, and tuned YAML if any).

Every config field is a knob (:mod:`rlrun.knobs`), as the run's and the env's are.
"""

from __future__ import annotations

import ast
import functools
import importlib
import pkgutil
import sys
import types
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Optional

from rlrun.knobs import AT_LEAST_ONE, FINITE, FRACTION_CLOSED, Check, knob, one_of


@dataclass
class AlgoConfig:
    """What every algorithm shares: rollout length, advantage estimation, networks."""

    name: str = knob("???", "the algorithm, set by its registration")
    n_steps: int = knob(256, "rollout length T per env per iteration; 256 x 8 envs: 2,048 samples an update, "
                        "SB3's PPO and TRPO default (one env x 2,048), 48 updates in 100k steps", AT_LEAST_ONE)
    gamma: float = knob(0.99, "discount factor", Check(lambda v: 0 < v <= 1, "must be in (0, 1]"))
    gae_lambda: float = knob(0.95, "GAE lambda (Schulman et al. 2016); 1.0 gives Monte-Carlo returns", FRACTION_CLOSED)
    normalize_advantage: bool = knob(True, "standardise the advantages of each batch (PPO paper, Baselines)")
    hidden_sizes: list[int] = knob([64, 64], "hidden layers of the actor and of the critic (PPO/TRPO papers)",
                                   Check(lambda v: all(size >= 1 for size in v),
                                         "every layer size must be >= 1 ([] is a linear policy)"))
    activation: str = knob("tanh", "hidden activation (PPO/TRPO papers: tanh)", one_of("tanh", "relu"))
    log_std_init: float = knob(0.0, "Box actions: initial log std (of each action; with use_sde, of each "
                               "exploration-matrix entry) (SB3: 0)", FINITE)
    use_sde: bool = knob(False, "Box actions: generalised state-dependent exploration (gSDE, Raffin et al. 2021; "
                         "SB3's use_sde) instead of a state-independent std")
    sde_sample_freq: int = knob(-1, "with use_sde: env steps between new exploration matrices; -1: one per rollout "
                                "(SB3's default)", Check(lambda v: v == -1 or v >= 1, "must be -1 or >= 1"))
    ortho_init: bool = knob(True, "orthogonal initialisation, gain sqrt(2) inside, 0.01 policy / 1 value output (Baselines)")
    encoder: str = knob("auto", "observations: auto (an MLP on flat ones; images: nature_cnn from 36 pixels a side, "
                        "small_cnn below), mlp, nature_cnn (Mnih et al. 2015), small_cnn (MinAtar's)",
                        one_of("auto", "mlp", "nature_cnn", "small_cnn"))
    cnn_features: Optional[int] = knob(None, "the CNN's fully connected width; None: nature_cnn 512, small_cnn 128",
                                       AT_LEAST_ONE)


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
        charts: its custom-scalars charts, title -> tags; ``<name>/kl`` (the exact policy KL) can be used.
        log_every: iterations between writes of the update metrics and diagnostics when the run's
            ``log_every`` is null (SB3's ``log_interval``: 100 for A2C's 5-step iterations, else 1).
    """

    config: type
    algorithm: type
    title: str
    summary: str
    trust_region_key: Optional[str] = None
    charts: dict[str, list[str]] = field(default_factory=dict)
    log_every: int = 1


def _registration(tree: ast.Module) -> ast.Call | None:
    """The ``REGISTRATION = Registration(...)`` call of a module's source, if it has one."""
    return next((node.value for node in tree.body if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                 and any(getattr(t, "id", None) == "REGISTRATION" for t in node.targets)), None)


@functools.cache
def algorithm_sources() -> dict[str, ast.Module]:
    """The parsed source of every algorithm module (one with a REGISTRATION), by name."""
    trees = {path.stem: ast.parse(path.read_text(), str(path)) for path in sorted(Path(__file__).parent.glob("*.py"))}
    return {name: tree for name, tree in trees.items() if _registration(tree) is not None}


def _config_head(tree: ast.Module) -> list[ast.stmt]:
    """The statements of an algorithm module that define its config: its AlgoConfig subclasses,
    the module-level names they use (``SCHEDULES = one_of(...)``), and the imports from the
    standard library, this module, rlrun.knobs and rlrun.errors, which import no torch."""
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)
               and any(getattr(base, "id", None) == "AlgoConfig" for base in node.bases)]
    used = {node.id for cls in classes for node in ast.walk(cls) if isinstance(node, ast.Name)}
    keep = []
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            keep_it = (node.module in ("__future__", __name__, "rlrun.errors", "rlrun.knobs")
                       or node.module in sys.stdlib_module_names)
        elif isinstance(node, ast.Import):
            keep_it = all(alias.name.split(".")[0] in sys.stdlib_module_names for alias in node.names)
        elif isinstance(node, ast.Assign):
            keep_it = any(getattr(target, "id", None) in used for target in node.targets)
        else:
            keep_it = node in classes
        if keep_it:
            keep.append(node)
    return keep


@functools.cache
def configs() -> dict[str, type]:
    """Every algorithm's config dataclass, by name, without importing its module or torch.

    The module's config statements (:func:`_config_head`: the same source lines) run on their
    own, so composing a config (``rlrun --cfg job``, every config error, a sweep's preflight)
    costs no torch import. The class is the module's own in every field, default, doc and check;
    :func:`algorithms` gives the imported module's (tests/test_registry.py compares the two). A
    config whose statements need more of their module (a default imported from ``core/``) comes
    from importing the module instead.
    """
    found = {}
    for stem, tree in algorithm_sources().items():
        try:
            found[stem] = config_from_source(stem, tree)
        except Exception:  # a config that needs more of its module (a name imported from core/): import it
            found[stem] = importlib.import_module(f"{__package__}.{stem}").REGISTRATION.config
    return found


def config_from_source(stem: str, tree: ast.Module) -> type:
    name = f"{__package__}.{stem}"
    module = types.ModuleType(name)
    imported = name in sys.modules
    sys.modules.setdefault(name, module)  # dataclass() looks the module up while it builds the class
    try:
        exec(compile(ast.Module(body=_config_head(tree), type_ignores=[]), module.__name__, "exec"), module.__dict__)
    finally:
        if not imported:
            del sys.modules[name]
    config = next(value for value in vars(module).values() if isinstance(value, type)
                  and issubclass(value, AlgoConfig) and value is not AlgoConfig)
    # Its annotations as types: the module they name is not in sys.modules to resolve them later.
    config.__annotations__ = {key: eval(hint, vars(module)) if isinstance(hint, str) else hint  # noqa: S307
                              for key, hint in vars(config)["__annotations__"].items()}
    config.__module__ = f"{__package__}.configs"  # where pickle finds it again (rlrun/algos/configs.py)
    return config


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
    """name -> (its registration's ``summary``, ``key=default`` of its own knobs), without
    importing the algorithm modules (``rlrun --help`` answers without torch)."""
    out = {}
    for name, config in configs().items():
        call = _registration(algorithm_sources()[name])
        summary = next((ast.literal_eval(k.value) for k in call.keywords if k.arg == "summary"), "")
        own = [f for f in fields(config) if f.name in vars(config).get("__annotations__", {}) and f.name != "name"]
        knobs = [f"{f.name}={f.default_factory() if f.default is MISSING else f.default}".replace(" ", "") for f in own]
        out[name] = (summary, knobs)
    return out
