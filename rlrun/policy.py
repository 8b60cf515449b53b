"""A trained policy outside the trainer: ``rlrun.load(path).act(obs)``, the evaluation and ``rlrun-eval``.

It holds the actor and the observation normalisation saved with it (read, never updated), and acts
through the same path as the rollout (:mod:`rlrun.acting`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from gymnasium import spaces
from omegaconf import OmegaConf

from rlrun.acting import ActionDecoder, ObservationEncoder, make_obs_normalizer
from rlrun.networks import make_networks
from rlrun.normalization import ObsNormalizer
from rlrun.observations import batch_of_one, leaves, pick, within_float32
from rlrun.process_setup import resolve_device


class Policy:
    """``act(observation) -> action`` for one observation of the env's observation space, as the env
    takes it (a Box action clipped to the bounds, an int for Discrete)."""

    def __init__(self, actor: torch.nn.Module, observation_space: spaces.Space, action_space: spaces.Space,
                 obs_normalizer: ObsNormalizer | None = None):
        self.actor, self.observation_space, self.action_space = actor, observation_space, action_space
        device = next(actor.parameters()).device
        self.encode = ObservationEncoder(observation_space, obs_normalizer, device)
        self.to_env = ActionDecoder(action_space)

    def act(self, observation: Any, deterministic: bool = True, generator: torch.Generator | None = None) -> Any:
        """The mode of pi(.|s) (``deterministic``, the default), or a sample drawn with ``generator``.
        One observation of the env's space; anything else (a batch, another shape, None, NaN) is
        a ValueError with one line."""
        batch = self._batch_of_one(observation)
        with torch.inference_mode():
            action = self.to_env(self.actor.act(self.encode.tensor(batch), deterministic, generator).cpu().numpy())[0]
        return int(action) if isinstance(self.action_space, spaces.Discrete) else action

    def _batch_of_one(self, observation: Any) -> Any:
        space = self.observation_space
        try:
            batch = batch_of_one(observation, space)
            for path, leaf in leaves(space):
                value = pick(batch, path)
                shape = leaf.shape if leaf.shape is not None else ()
                if value.shape[1:] != tuple(shape) or value.dtype == object:
                    raise ValueError(f"shape {value.shape[1:]}, expected {tuple(shape)}")
                if not within_float32(value):
                    raise ValueError("values that are NaN, inf or beyond float32's range")
                if isinstance(leaf, spaces.Discrete) and not leaf.start <= int(value[0]) < leaf.start + leaf.n:
                    raise ValueError(f"{int(value[0])} is outside the space")
        except (ValueError, TypeError, KeyError, IndexError) as err:
            raise ValueError(f"Policy.act takes one observation of {space}; got {type(observation).__name__} "
                             f"({str(err).splitlines()[0] if str(err) else type(err).__name__})") from None
        return batch


def checkpoint_path(path: Path) -> tuple[Path, Path]:
    """(checkpoint file, run directory) for a run directory or a checkpoint file."""
    if path.is_dir():
        return path / "checkpoints" / "last.pt", path
    run_dir = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return path, run_dir


def load(path: str | Path, device: str = "cpu", trust_modules: bool = False) -> Policy:
    """The policy saved in a run directory (its ``checkpoints/last.pt``) or in a checkpoint file.

    Opening the checkpoint runs no code. A config whose env names a module to import
    (``env.register``, ``env.id=module:Id``, ``env.wrappers``) outside gymnasium and rlrun's own
    env packages is refused unless the module is imported already or ``trust_modules`` is set.

    Raises CheckpointError (unreadable file, or a module not trusted), EnvError (the env is not
    installed here) or ValueError (a checkpoint that does not match its config), each with one line.
    """
    from rlrun.checkpoint import load_checkpoint
    from rlrun.errors import CheckpointError
    from rlrun.envs import check_env_id, consent_needed, make_env

    from rlrun.config import DEVICES

    if device not in DEVICES:
        raise ValueError(f"device={device!r} is not one of {', '.join(DEVICES)}")
    file, _ = checkpoint_path(Path(path))
    checkpoint = load_checkpoint(file)
    cfg = OmegaConf.create(checkpoint["config"])
    refusal = None if trust_modules else consent_needed(cfg.env, f"checkpoint {file}", "pass trust_modules=True")
    if refusal:
        raise CheckpointError(refusal)
    check_env_id(cfg.env.id, cfg.env.get("register"))
    env = make_env(cfg.env)
    observation_space, action_space = env.observation_space, env.action_space
    env.close()
    return from_checkpoint(checkpoint, observation_space, action_space, resolve_device(device), file)


def from_checkpoint(checkpoint: dict, observation_space: spaces.Space, action_space: spaces.Space,
                    device: torch.device, file: Path) -> Policy:
    cfg = OmegaConf.create(checkpoint["config"])
    actor, _ = make_networks(cfg.algo, observation_space, action_space)
    try:
        actor.load_state_dict(checkpoint["actor"])
    except (KeyError, RuntimeError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"checkpoint {file} does not match its config ({first_line})") from None
    actor.to(device).eval()
    normalizer = None
    if checkpoint.get("obs_normalizer") is not None:
        normalizer = make_obs_normalizer(observation_space, cfg.env.clip_obs)
        normalizer.rms.load_state_dict(checkpoint["obs_normalizer"])
    return Policy(actor, observation_space, action_space, normalizer)
