"""``hydra/launcher=batched``: a sweep's jobs that differ only in ``seed`` run as one group in one
process (:func:`rlrun.seed_group.train_group`), their updates stacked.

The groups are split so that every core has one: 16 seeds of one configuration on 2 cores are two
groups of 8, run side by side; jobs that differ in anything else are groups of their own, run
``processes`` at a time. Each job keeps its directory, ``.hydra/`` files, summary and exit
status, as with any launcher, so ``rlrun-report``, the failed-jobs report and ``rlrun -m
resume=<sweep dir>`` see the usual sweep. Groups run in processes forked from a server process
(multiprocessing's fork server) that imports torch, gymnasium and the algorithms once, started
as soon as the command line asks for this launcher (:func:`start_group_server`), so that those
imports run on another core while this process composes and checks the sweep. A signal to this
process is passed on to the groups, and each saves every seed before it exits.
"""

from __future__ import annotations

import copy
import logging
import multiprocessing
import os
import signal
import sys
from multiprocessing import forkserver
from multiprocessing.connection import wait
from pathlib import Path
from typing import Sequence

from hydra._internal.config_loader_impl import ConfigLoaderImpl, get_overrides_dirname
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus, _save_config, configure_log, filter_overrides, setup_globals
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from rlrun.checkpoint import resume_command
from rlrun.config import override_key

log = logging.getLogger(__name__)

Job = tuple[int, list[str]]  # (job index, its overrides)


def seed_groups(job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[list[Job]]:
    """The jobs grouped by their overrides other than ``seed``, in the order they first appear."""
    groups: dict[tuple[str, ...], list[Job]] = {}
    for offset, overrides in enumerate(job_overrides):
        key = tuple(o for o in overrides if override_key(o) != "seed")
        groups.setdefault(key, []).append((initial_job_idx + offset, list(overrides)))
    return list(groups.values())


def _seeds(chunk: list[Job]) -> str:
    """The seeds of a chunk's jobs, as ``0,1,2`` (``-`` for a job without one)."""
    return ",".join(next((o.split("=", 1)[1] for o in overrides if override_key(o) == "seed"), "-")
                    for _, overrides in chunk)


def split(groups: list[list[Job]], processes: int) -> list[list[Job]]:
    """With fewer groups than processes, each group cut into about ``processes / len(groups)``
    parts of consecutive seeds (sizes differing by at most one, never an empty one)."""
    parts = max(1, processes // len(groups))
    chunks = []
    for group in groups:
        n = min(parts, len(group))
        size, extra = divmod(len(group), n)
        start = 0
        for k in range(n):
            end = start + size + (k < extra)
            chunks.append(group[start:end])
            start = end
    return chunks


def launch(hydra_context: HydraContext, config: DictConfig, job_overrides: Sequence[Sequence[str]],
           initial_job_idx: int, processes: int | None, via: DictConfig | None = None) -> list[JobReturn]:
    setup_globals()
    configure_log(config.hydra.hydra_logging, config.hydra.verbose)
    Path(str(config.hydra.sweep.dir)).mkdir(parents=True, exist_ok=True)
    processes = processes or os.cpu_count() or 1
    chunks = split(seed_groups(job_overrides, initial_job_idx), processes)
    log.info("Launching %d jobs as %d groups of seeds, %d at a time", len(job_overrides), len(chunks),
             min(processes, len(chunks)))
    for chunk in chunks:
        rest = " ".join(o for o in filter_overrides(chunk[0][1]) if override_key(o) != "seed")
        log.info("\t#%s : %s seed=%s", ",".join(str(idx) for idx, _ in chunk), rest, _seeds(chunk))
    if via is not None:
        outcomes = _through(via, hydra_context, config, chunks)
    elif len(chunks) == 1 or processes == 1:
        outcomes = [_run_jobs(_prepared(hydra_context, config, chunk)) for chunk in chunks]
    else:
        outcomes = _in_processes(hydra_context, config, chunks, processes)
    returns = sorted((ret for rets, _ in outcomes for ret in rets), key=lambda ret: ret.hydra_cfg.hydra.job.num)
    exit_codes = [code for _, code in outcomes if code is not None]
    if exit_codes:  # stopped by a signal: every group saved its seeds
        sys.exit(max(exit_codes))
    return returns


def forks_groups(argv: Sequence[str]) -> bool:
    """Whether the command line runs a sweep with this launcher in processes of this machine (not
    through Ray or SLURM, not one process): then the fork server is worth starting at once."""
    processes = next((a.split("=", 1)[1] for a in argv if a.startswith("hydra.launcher.processes=")), None)
    several = int(processes) > 1 if processes is not None and processes.isdigit() else (os.cpu_count() or 1) > 1
    return bool({"-m", "--multirun"} & set(argv)) and "hydra/launcher=batched" in argv and several


# the signals that stop a sweep's groups; the fork server blocks them (rlrun.launch.held_signals) for its groups
STOPS = (signal.SIGINT, signal.SIGTERM)
# what every group's process imports: the fork server imports it once, before it forks them
GROUP_IMPORTS = ["rlrun.launch.held_signals", "rlrun.seed_group", "rlrun.launch.task", "rlrun.launch.batched"]


def start_group_server() -> None:
    """Start the fork server the groups' processes come from, in the background: its imports of
    torch and the rest then run beside this process's composition and checks of the sweep. It
    ignores Ctrl-C and holds the stop signals back for its groups (:mod:`rlrun.launch.held_signals`);
    it ends when this process does. Started again by :func:`_in_processes` if it is not running."""
    multiprocessing.set_forkserver_preload(GROUP_IMPORTS)
    interrupt = signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the server's process
    try:
        forkserver.ensure_running()
    finally:
        signal.signal(signal.SIGINT, interrupt)


def _in_processes(hydra_context: HydraContext, config: DictConfig, chunks: list[list[Job]],
                  processes: int) -> list[tuple[list[JobReturn], int | None]]:
    """Each chunk in a process from the fork server, at most ``processes`` at a time. A chunk's
    jobs are composed and their directories prepared here (those of the first ``processes`` while
    the server may still be importing). A signal is passed on to the running groups, and no group
    starts after it: a group whose process was starting when it came is told through its pipe and
    runs no job."""
    start_group_server()  # a no-op if running
    context = multiprocessing.get_context("forkserver")
    pending, running, outcomes = list(range(len(chunks))), {}, {}
    stopped: list[int] = []  # the signals received

    def pass_on(signum: int, frame: object) -> None:  # each group saves its seeds and ends
        stopped.append(signum)
        for process, _ in running.values():
            if process.pid is not None:
                os.kill(process.pid, signum)

    previous = {sig: signal.signal(sig, pass_on) for sig in STOPS}
    try:
        prepared = {index: _prepared(hydra_context, config, chunks[index]) for index in pending[:processes]}
        while pending or running:
            while pending and len(running) < processes and not stopped:
                index = pending.pop(0)
                jobs = prepared.pop(index, None) or _prepared(hydra_context, config, chunks[index])
                here, there = context.Pipe()  # the group's outcome back; a stop that came while it started
                process = context.Process(target=_chunk_process, args=(there, jobs))
                running[here] = (process, index)
                process.start()  # waits for the server, which may still be importing
                there.close()
                if stopped:  # the group may not have its handlers yet: it reads this once it has
                    here.send(stopped[0])
            if stopped:
                for index in pending:
                    outcomes[index] = _not_started(hydra_context, config, chunks[index], stopped[0])
                pending = []
            for here in wait(list(running)) if running else []:
                process, index = running.pop(here)
                try:
                    outcome = here.recv()
                except (EOFError, ConnectionResetError):  # no answer
                    outcome = None
                process.join()
                if outcome is None and stopped and process.exitcode == 0:  # it read the stop: no job ran
                    outcome = _not_started(hydra_context, config, chunks[index], stopped[0])
                elif outcome is None:  # the process died (killed): its jobs failed
                    outcome = ([_failed(hydra_context, config, job, "the group's process died")
                                for job in chunks[index]], None)
                outcomes[index] = outcome
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return [outcomes[index] for index in range(len(chunks))]


def _not_started(hydra_context: HydraContext, config: DictConfig, chunk: list[Job],
                 signum: int) -> tuple[list[JobReturn], int]:
    """The outcome of a chunk that a stop kept from starting: its jobs not run, the stop's exit status."""
    log.warning("seeds %s not started: the sweep was stopped first; resume with: %s", _seeds(chunk),
                resume_command(Path(str(config.hydra.sweep.dir)), sweep=True))
    return [_failed(hydra_context, config, job, "not run: the sweep was stopped first") for job in chunk], 128 + signum


class GroupTask:
    """The task another launcher runs (``via``): its k-th job is the k-th group of seeds, whose jobs'
    configs were composed here; it trains them together where that launcher runs it (a Ray task, a
    SLURM job) and returns every job's objective and the exit status of a stop."""

    def __init__(self, groups: list[list[DictConfig]]):
        self.groups = groups

    def __call__(self, cfg: DictConfig) -> dict:
        from rlrun.launch.task import run_group_task

        job = HydraConfig.instance().cfg  # the group's first job, as that launcher set it up
        sweep_configs = self.groups[int(job.hydra.job.num)]
        returns = [_prepare(sweep_config) for sweep_config in sweep_configs]
        HydraConfig.instance().set_config(job)
        values, exit_code = run_group_task([ret.cfg for ret in returns],
                                           [Path(ret.hydra_cfg.hydra.runtime.output_dir) for ret in returns],
                                           [[override_key(o) for o in ret.overrides] for ret in returns])
        return {"values": values, "exit_code": exit_code}


def _through(via: DictConfig, hydra_context: HydraContext, config: DictConfig,
             chunks: list[list[Job]]) -> list[tuple[list[JobReturn], int | None]]:
    """Each group as one job of the launcher ``via`` configures (the group's first job's overrides)."""
    from hydra.core.plugins import Plugins

    groups = [_sweep_configs(hydra_context, config, chunk) for chunk in chunks]
    inner_config = copy.deepcopy(config)
    with read_write(inner_config.hydra), open_dict(inner_config.hydra):
        inner_config.hydra.launcher = via
    inner = Plugins.instance().instantiate_launcher(hydra_context=hydra_context, task_function=GroupTask(groups),
                                                    config=inner_config)
    group_returns = inner.launch([chunk[0][1] for chunk in chunks], initial_job_idx=0)
    outcomes = []
    for chunk, sweep_configs, group in zip(chunks, groups, group_returns):
        returns = [_prepare(sweep_config, save=False) for sweep_config in sweep_configs]
        if group.status == JobStatus.COMPLETED:
            for ret, value in zip(returns, group.return_value["values"]):
                ret.status, ret.return_value = JobStatus.COMPLETED, value
            outcomes.append((returns, group.return_value["exit_code"]))
        else:  # the group's job itself failed (its worker died): each of its jobs did
            try:
                group.return_value  # noqa: B018 - raises the job's error
            except Exception as err:  # noqa: BLE001
                for ret in returns:
                    ret.status, ret.return_value = JobStatus.FAILED, err
            outcomes.append((returns, None))
    return outcomes


def _chunk_process(connection, jobs: list[JobReturn]) -> None:
    """A group in its own process, of jobs prepared by the launcher (:func:`_prepare`): it needs
    none of Hydra's global state but OmegaConf's resolvers (``setup_globals``; rlrun's are
    registered on import). A stop that came while this process started, to it (held back by the
    server's mask until now) or to the launcher before it knew this process (through
    ``connection``), means no job runs."""
    held: list[int] = []
    for sig in STOPS:
        signal.signal(sig, lambda signum, frame: held.append(signum))
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPS)  # what was held back is handled here
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not held and not connection.poll():
        setup_globals()
        connection.send(_run_jobs(jobs))
    while connection.poll():  # read, so that the pipe closes cleanly
        connection.recv()
    connection.close()


def _sweep_config(hydra_context: HydraContext, config: DictConfig, job: Job) -> DictConfig:
    idx, overrides = job
    return _numbered(hydra_context.config_loader.load_sweep_config(config, list(overrides)), idx)


def _numbered(sweep_config: DictConfig, idx: int) -> DictConfig:
    """The job's id and number in the sweep, as Hydra's launchers set them."""
    with open_dict(sweep_config):
        sweep_config.hydra.job.id = idx
        sweep_config.hydra.job.num = idx
    return sweep_config


def _sweep_configs(hydra_context: HydraContext, config: DictConfig, chunk: list[Job]) -> list[DictConfig]:
    """The job configs of a group: the first job's composed by Hydra (a few tenths of a second
    each), the others, which differ from it only in ``seed``, copied from it with their own seed,
    overrides, override_dirname and job number, as Hydra's composition would set them."""
    first = _sweep_config(hydra_context, config, chunk[0])
    parser = OverridesParser.create()
    dirname = first.hydra.job.config.override_dirname
    configs = [first]
    for idx, overrides in chunk[1:]:
        task = [o for o in parser.parse_overrides(list(overrides)) if not o.is_hydra_override()]
        sweep_config = copy.deepcopy(first)
        OmegaConf.copy_cache(from_config=config, to_config=sweep_config)  # as load_sweep_config does
        ConfigLoaderImpl._apply_overrides_to_config([o for o in task if o.key_or_group == "seed"], sweep_config)
        with open_dict(sweep_config):
            sweep_config.hydra.overrides.task = [o.input_line for o in task]
            sweep_config.hydra.job.override_dirname = get_overrides_dirname(
                overrides=task, kv_sep=dirname.kv_sep, item_sep=dirname.item_sep, exclude_keys=dirname.exclude_keys)
        configs.append(_numbered(sweep_config, idx))
    return configs


def _failed(hydra_context: HydraContext, config: DictConfig, job: Job, why: str) -> JobReturn:
    ret = _prepare(_sweep_config(hydra_context, config, job), save=False)
    ret.status, ret.return_value = JobStatus.FAILED, RuntimeError(why)
    return ret


def _prepare(sweep_config: DictConfig, save: bool = True) -> JobReturn:
    """What Hydra's ``run_job`` does before calling the task: the job's output directory, its
    ``.hydra/`` files and its JobReturn (without a value yet)."""
    HydraConfig.instance().set_config(sweep_config)
    output_dir = os.path.join(str(sweep_config.hydra.sweep.dir), str(sweep_config.hydra.sweep.subdir))
    with read_write(sweep_config.hydra.runtime), open_dict(sweep_config.hydra.runtime):
        sweep_config.hydra.runtime.output_dir = os.path.abspath(output_dir)
    HydraConfig.instance().set_config(sweep_config)
    task_cfg = copy.deepcopy(sweep_config)
    with read_write(task_cfg), open_dict(task_cfg):
        del task_cfg["hydra"]
    ret = JobReturn(overrides=list(OmegaConf.to_container(sweep_config.hydra.overrides.task)), cfg=task_cfg,
                    hydra_cfg=copy.deepcopy(HydraConfig.instance().cfg), working_dir=os.getcwd())
    if save:
        Path(output_dir).mkdir(parents=True, exist_ok=True)
        hydra_output = Path(sweep_config.hydra.runtime.output_dir) / str(sweep_config.hydra.output_subdir)
        _save_config(task_cfg, "config.yaml", hydra_output)
        _save_config(ret.hydra_cfg, "hydra.yaml", hydra_output)
        _save_config(sweep_config.hydra.overrides.task, "overrides.yaml", hydra_output)
    return ret


def _prepared(hydra_context: HydraContext, config: DictConfig, chunk: list[Job]) -> list[JobReturn]:
    """A chunk's jobs composed and prepared (:func:`_sweep_configs`, :func:`_prepare`)."""
    return [_prepare(sweep_config) for sweep_config in _sweep_configs(hydra_context, config, chunk)]


def _run_jobs(jobs: list[JobReturn]) -> tuple[list[JobReturn], int | None]:
    """The prepared jobs of one group, trained together; (their JobReturns, the exit status of a
    stop or None)."""
    from rlrun.launch.task import run_group_task

    hydra = jobs[0].hydra_cfg.hydra
    configure_log(hydra.job_logging, hydra.verbose)  # the console; files: per seed
    values, exit_code = run_group_task([job.cfg for job in jobs],
                                       [Path(job.hydra_cfg.hydra.runtime.output_dir) for job in jobs],
                                       [[override_key(o) for o in job.overrides] for job in jobs])
    for job, value in zip(jobs, values):
        job.return_value, job.status = value, JobStatus.COMPLETED
    return jobs, exit_code


def register() -> None:
    """Make ``hydra/launcher=batched`` known to Hydra whatever the install: Hydra finds plugins by
    listing the ``hydra_plugins`` namespace, which cannot list the modules of an editable install
    (setuptools serves them through an import hook). Importing the plugin module stores its config;
    its class is then added to Hydra's plugin registry if the scan did not find it."""
    from hydra.core.plugins import Plugins
    from hydra_plugins.rlrun_batched_launcher.batched_launcher import BatchedLauncher

    name = f"{BatchedLauncher.__module__}.{BatchedLauncher.__qualname__}"
    Plugins.instance().class_name_to_class.setdefault(name, BatchedLauncher)
