"""A one-node SLURM on loopback, to run rlrun's SLURM launcher against a real scheduler.

    python -m tests.local_slurm start          # installs Debian's SLURM and munge on first use
    python -m tests.local_slurm exec sbatch --wrap 'sleep 1'
    python -m tests.local_slurm exec rlrun -m seed=0,1 hydra/launcher=submitit_slurm hydra.launcher.partition=debug
    python -m tests.local_slurm stop

The daemons (munged, slurmctld, slurmd) and every command given to ``exec`` run in a private
network namespace whose only interface is ``lo``: nothing it does can reach another machine.
Needs root (namespaces, the daemons) and, the first time, apt. Two partitions: ``debug`` (the
default; its jobs are requeued when pre-empted, after a 30 s grace time) and ``high``, whose
jobs pre-empt ``debug``'s. The state lives in ``$RLRUN_SLURM_DIR`` (default
``/tmp/rlrun-local-slurm``) and is started afresh each time, so no job of an earlier cluster comes
back.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

NAMESPACE = os.environ.get("RLRUN_SLURM_NAMESPACE", "rlrun-slurm")
STATE = Path(os.environ.get("RLRUN_SLURM_DIR", "/tmp/rlrun-local-slurm"))
PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")


class Unavailable(RuntimeError):
    """This machine cannot run the local SLURM (not root, no apt, a daemon that does not start)."""


def slurm_conf() -> str:
    cpus = os.cpu_count() or 1
    lines = {
        "ClusterName": "rlrun-local", "SlurmctldHost": "localhost(127.0.0.1)",
        "SlurmUser": "root", "SlurmdUser": "root", "AuthType": "auth/munge", "CredType": "cred/munge",
        "ProctrackType": "proctrack/linuxproc", "TaskPlugin": "task/none",
        "SelectType": "select/cons_tres", "SelectTypeParameters": "CR_Core", "SchedulerType": "sched/backfill",
        "ReturnToService": "2", "MpiDefault": "none",
        "SlurmctldPidFile": STATE / "slurmctld.pid", "SlurmdPidFile": STATE / "slurmd.pid",
        "SlurmdSpoolDir": STATE / "spool", "StateSaveLocation": STATE / "state",
        "SlurmctldLogFile": STATE / "slurmctld.log", "SlurmdLogFile": STATE / "slurmd.log",
        "JobCompType": "jobcomp/none", "AccountingStorageType": "accounting_storage/none",
        "JobAcctGatherType": "jobacct_gather/none",
        "PreemptType": "preempt/partition_prio", "PreemptMode": "REQUEUE",
    }
    text = "".join(f"{key}={value}\n" for key, value in lines.items())
    text += f"NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs={cpus} State=UNKNOWN\n"
    text += ("PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP PriorityTier=1 "
             "PreemptMode=REQUEUE GraceTime=30\n")
    text += "PartitionName=high Nodes=localhost MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF\n"
    return text


def in_namespace(argv: list[str]) -> list[str]:
    """``argv`` as a command that runs inside the namespace, with this cluster's config."""
    return ["ip", "netns", "exec", NAMESPACE, "env", f"SLURM_CONF={STATE / 'slurm.conf'}", *map(str, argv)]


def run(*argv, **kwargs) -> subprocess.CompletedProcess:
    """``subprocess.run`` of a command inside the namespace (``sbatch``, ``squeue``, ``rlrun -m ...``)."""
    return subprocess.run(in_namespace(list(argv)), **kwargs)


def running() -> bool:
    try:
        return run("sinfo", "-h", capture_output=True, timeout=20).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _quiet(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise Unavailable(f"{' '.join(argv)} failed: {(done.stderr or done.stdout).strip()[-300:]}")


def install() -> None:
    if shutil.which("slurmctld") and shutil.which("munged"):
        return
    if not shutil.which("apt-get"):
        raise Unavailable("SLURM is not installed and there is no apt-get to install it")
    _quiet(["apt-get", "update", "-qq"])
    _quiet(["apt-get", "install", "-y", "-qq", *PACKAGES])


def start() -> None:
    """Install if needed, then a fresh cluster: munge, slurmctld and slurmd in the namespace."""
    if os.geteuid() != 0:
        raise Unavailable("a local SLURM needs root (a network namespace and its daemons)")
    install()
    stop()  # whatever an earlier start left
    shutil.rmtree(STATE, ignore_errors=True)
    for sub in ("state", "spool"):
        (STATE / sub).mkdir(parents=True)
    (STATE / "slurm.conf").write_text(slurm_conf())
    # without a systemd-managed cgroup tree (containers), slurmd's cgroup plugin needs telling
    (STATE / "cgroup.conf").write_text("CgroupPlugin=cgroup/v1\nCgroupAutomount=no\nIgnoreSystemd=yes\n")
    _quiet(["ip", "netns", "add", NAMESPACE])
    _quiet(["ip", "netns", "exec", NAMESPACE, "ip", "link", "set", "lo", "up"])
    # a second loopback address: glibc's lookups (AI_ADDRCONFIG) fail when 127.0.0.1 is the only one
    _quiet(["ip", "netns", "exec", NAMESPACE, "ip", "addr", "add", "127.0.0.2/8", "dev", "lo"])
    Path("/run/munge").mkdir(parents=True, exist_ok=True)
    shutil.chown("/run/munge", "munge", "munge")
    if subprocess.run(["pgrep", "-x", "munged"], capture_output=True).returncode != 0:
        _quiet(["runuser", "-u", "munge", "--", "munged"])
        pid = subprocess.run(["pgrep", "-n", "-x", "munged"], capture_output=True, text=True).stdout.strip()
        (STATE / "munged.pid").write_text(pid)  # started here: stop() ends it
    _quiet(in_namespace(["slurmctld"]))
    _quiet(in_namespace(["slurmd", "-N", "localhost"]))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = run("sinfo", "-h", "-o", "%T", capture_output=True, text=True).stdout
        if any(word in state for word in ("idle", "mix", "alloc")):
            return
        time.sleep(1)
    raise Unavailable(f"the node did not come up within 60 s (logs in {STATE})")


def stop() -> None:
    """End the jobs, then the daemons this cluster started, then the namespace."""
    if (STATE / "slurm.conf").is_file():
        subprocess.run(in_namespace(["scancel", "--full", "--signal=KILL", "--user=root"]), capture_output=True)
        time.sleep(1)
    for name in ("slurmd.pid", "slurmctld.pid", "munged.pid"):
        pid_file = STATE / name
        if pid_file.is_file():
            try:
                os.kill(int(pid_file.read_text().strip()), 15)
            except (ValueError, ProcessLookupError):
                pass
            pid_file.unlink(missing_ok=True)  # a daemon removes its own as it ends
    subprocess.run(["ip", "netns", "delete", NAMESPACE], capture_output=True)


def main(argv: list[str]) -> int:
    if argv[:1] == ["start"]:
        start()
        return run("sinfo").returncode
    if argv[:1] == ["stop"]:
        stop()
        return 0
    if argv[:1] == ["exec"] and len(argv) > 1:
        return run(*argv[1:]).returncode
    print(__doc__.split("\n\n")[1], file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except Unavailable as err:
        print(f"local_slurm: {err}", file=sys.stderr)
        sys.exit(1)
