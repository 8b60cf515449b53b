"""``hydra/launcher=batched``: rlrun's launcher that runs the seeds of a sweep together (the
grouping and running live in :mod:`rlrun.launch.batched`; this module is what Hydra's plugin scan
imports, so it stays light: no torch; and without ``from __future__ import annotations``, which
the scan's bare module execution cannot resolve in a dataclass)."""

from dataclasses import dataclass
from typing import Any, Optional, Sequence

from hydra.core.config_store import ConfigStore
from hydra.core.utils import JobReturn
from hydra.plugins.launcher import Launcher
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


@dataclass
class BatchedLauncherConf:
    _target_: str = "hydra_plugins.rlrun_batched_launcher.batched_launcher.BatchedLauncher"
    _recursive_: bool = False  # ``via`` stays a config: rlrun instantiates that launcher itself
    # processes at a time, one group of seeds each; null: one per core of this machine
    processes: Optional[int] = None
    # another launcher's config (hydra/launcher=batched_ray_local, batched_ray_cluster, batched_slurm):
    # one of its jobs a group of seeds, in place of the local processes
    via: Optional[Any] = None


ConfigStore.instance().store(group="hydra/launcher", name="batched", node=BatchedLauncherConf, provider="rlrun")


class BatchedLauncher(Launcher):
    """Jobs that differ only in ``seed`` run as one group in one process, their updates stacked."""

    def __init__(self, processes: Optional[int] = None, via: Optional[Any] = None) -> None:
        self.processes, self.via = processes, via
        self.config: Optional[DictConfig] = None
        self.hydra_context: Optional[HydraContext] = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config, self.hydra_context = config, hydra_context  # (the task: rlrun's own, run by the groups)

    def launch(self, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> Sequence[JobReturn]:
        from rlrun.launch.batched import launch

        assert self.config is not None and self.hydra_context is not None
        return launch(self.hydra_context, self.config, job_overrides, initial_job_idx, self.processes, self.via)
