"""Real services for the staff tests and benchmarks: a one-node Slurm cluster, a PostgreSQL server.

Each runs from Debian's packages in a private temporary folder (its own configuration, keys,
sockets, state and ports), so it never touches, or collides with, a cluster or database the
machine already runs; leaving the `with` block stops every process it started, even on error.
`Unavailable` says why one cannot be had here, for a clear skip.

    with slurm_cluster() as cluster:       # cluster.env has SLURM_CONF for sbatch/squeue
        subprocess.run(["sbatch", ...], env=cluster.env)
    with postgres_server() as pg:
        url = pg.create_database("gradebook")
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

START_TIMEOUT_S = 60


class Unavailable(RuntimeError):
    """The service cannot be installed or started here; the message says why."""


def _which(*tools: str) -> dict[str, str]:
    found = {t: shutil.which(t) or shutil.which(t, path="/usr/sbin:/sbin") for t in tools}
    missing = [t for t, p in found.items() if p is None]
    if missing:
        raise Unavailable(f"{', '.join(missing)} not installed (make system-deps)")
    return found  # type: ignore[return-value]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tail(path: Path, n: int = 6) -> str:
    try:
        lines = path.read_text(errors="replace").strip().splitlines()
    except OSError:
        return "(no log)"
    return " | ".join(lines[-n:])


def _wait_for(check, what: str, log: Path, procs: list[subprocess.Popen]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if check():
            return
        for p in procs:
            if p.poll() is not None:
                raise Unavailable(f"{what}: {p.args[0]} exited ({p.returncode}): {_tail(log)}")
        time.sleep(0.2)
    raise Unavailable(f"{what}: not ready after {START_TIMEOUT_S} s: {_tail(log)}")


def _stop(proc: subprocess.Popen, wait_s: float = 10) -> None:
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(wait_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(wait_s)


# -- Slurm -----------------------------------------------------------------------------------


@dataclass
class SlurmCluster:
    """A running one-node cluster: `env` is os.environ with this cluster's SLURM_CONF."""

    dir: Path
    conf: Path
    partition: str
    cpus: int
    env: dict[str, str] = field(default_factory=dict)

    def run(self, *cmd: str) -> subprocess.CompletedProcess:
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=60)

    def queue(self) -> list[str]:
        """Every job id still in the queue."""
        out = self.run("squeue", "--noheader", "--array", "--format=%i").stdout
        return out.split()


SLURM_CONF = """\
ClusterName=dlcourse-test
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket={dir}/run/munge.socket
CredType=cred/munge
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/run/slurmctld.pid
SlurmdPidFile={dir}/run/slurmd.pid
SlurmctldLogFile={dir}/log/slurmctld.log
SlurmdLogFile={dir}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=2
MinJobAge=600
MailProg=/bin/true
NodeName=dlcnode NodeHostname=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={mem_mb}
PartitionName={partition} Nodes=dlcnode Default=YES MaxTime=INFINITE State=UP
"""


def _slurm_problem() -> str | None:
    if os.geteuid() != 0:
        return "slurmd must run as root (it starts each job as its user)"
    return None


@contextlib.contextmanager
def slurm_cluster(cpus: int | None = None, partition: str = "debug") -> Iterator[SlurmCluster]:
    """munged + slurmctld + slurmd for one node on this machine, all in a temporary folder."""
    if why := _slurm_problem():
        raise Unavailable(why)
    tools = _which("munged", "mungekey", "munge", "slurmctld", "slurmd", "sbatch", "squeue")
    _which("sinfo", "scontrol", "scancel", "sacct")
    base = Path(tempfile.mkdtemp(prefix="dlcourse-slurm-"))
    procs: list[subprocess.Popen] = []
    logs: list = []
    cluster = None
    try:
        base.chmod(0o755)  # munged wants its socket's folder reachable by every user
        for sub, mode in (("key", 0o700), ("run", 0o755), ("state", 0o755), ("spool", 0o755),
                          ("log", 0o755), ("munge", 0o700)):  # fmt: skip
            (base / sub).mkdir(mode=mode)
            (base / sub).chmod(mode)
        key = base / "key" / "munge.key"
        subprocess.run([tools["mungekey"], "--create", f"--keyfile={key}"], check=True,
                       capture_output=True)  # fmt: skip
        sock = base / "run" / "munge.socket"
        munge_log = base / "log" / "munged.log"
        procs.append(_popen(
            [tools["munged"], "--foreground", f"--socket={sock}", f"--key-file={key}",
             f"--log-file={munge_log}", f"--pid-file={base / 'run' / 'munged.pid'}",
             f"--seed-file={base / 'munge' / 'seed'}"],
            base / "log" / "munged.out", logs, {},
        ))  # fmt: skip

        def munge_ok() -> bool:
            enc = subprocess.run([tools["munge"], "-n", f"--socket={sock}"], capture_output=True)
            return enc.returncode == 0

        _wait_for(munge_ok, "munged", munge_log, procs)

        n = cpus or os.cpu_count() or 1
        mem_mb = max(1024, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2**20 - 1024)
        conf = base / "slurm.conf"
        conf.write_text(SLURM_CONF.format(
            dir=base, ctld_port=_free_port(), d_port=_free_port(), cpus=n, mem_mb=mem_mb,
            partition=partition,
        ))  # fmt: skip
        env = {**os.environ, "SLURM_CONF": str(conf)}
        for var in [v for v in env if v.startswith(("SBATCH_", "SLURM_", "SQUEUE_"))]:
            if var != "SLURM_CONF":
                del env[var]  # a site's defaults (account, partition) are not this cluster's
        cluster = SlurmCluster(base, conf, partition, n, env)
        procs.append(_popen([tools["slurmctld"], "-D", "-i"], base / "log" / "ctld.out", logs,
                            env))  # fmt: skip
        procs.append(_popen([tools["slurmd"], "-D", "-N", "dlcnode"], base / "log" / "d.out",
                            logs, env))  # fmt: skip

        def node_idle() -> bool:
            out = cluster.run("sinfo", "--noheader", "--format=%T")
            return out.returncode == 0 and out.stdout.strip().startswith("idle")

        _wait_for(node_idle, "Slurm", base / "log" / "slurmctld.log", procs)
        yield cluster
    finally:
        if cluster is not None:
            _drain(cluster)
        for p in reversed(procs):
            _stop(p)
        for f in logs:
            f.close()
        shutil.rmtree(base, ignore_errors=True)


def _popen(cmd: list[str], out: Path, logs: list, env: dict[str, str]) -> subprocess.Popen:
    f = open(out, "wb")  # noqa: SIM115 - closed when the service stops
    logs.append(f)
    return subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env or None,
                            start_new_session=True)  # fmt: skip


def _drain(cluster: SlurmCluster) -> None:
    """Cancel every job and wait for the node to be empty, so no job outlives the cluster."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        cluster.run("scancel", "--full", f"--user={pwd.getpwuid(os.getuid()).pw_name}")
        deadline = time.monotonic() + 30
        while cluster.queue() and time.monotonic() < deadline:
            time.sleep(0.5)


# -- PostgreSQL ------------------------------------------------------------------------------


@dataclass
class PostgresServer:
    """A running server on a private Unix socket; `url(db)` is its SQLAlchemy URL."""

    dir: Path
    socket_dir: Path
    port: int
    user: str = "dlcourse"

    def url(self, database: str, driver: str = "postgresql") -> str:
        return f"{driver}://{self.user}@/{database}?host={self.socket_dir}&port={self.port}"

    def create_database(self, name: str) -> str:
        import sqlalchemy as sa

        engine = sa.create_engine(self.url("postgres", "postgresql+psycopg2"))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)


def _postgres_bin() -> Path:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: p.parts)
    if not versions:
        raise Unavailable("PostgreSQL server not installed (Debian: postgresql; make system-deps)")
    preferred = [p for p in versions if p.parts[-3] == "15"]
    return (preferred or versions)[-1].parent


def _server_user() -> tuple[int, int]:
    """PostgreSQL refuses to run as root: as root, Debian's `postgres` user runs it."""
    if os.geteuid() != 0:
        return os.getuid(), os.getgid()
    try:
        pw = pwd.getpwnam("postgres")
    except KeyError:
        raise Unavailable("running as root, and no `postgres` user to run the server") from None
    return pw.pw_uid, pw.pw_gid


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgresServer]:
    """initdb + pg_ctl start in a temporary folder, listening on a private Unix socket only."""
    bindir = _postgres_bin()
    uid, gid = _server_user()
    base = Path(tempfile.mkdtemp(prefix="dlcourse-pg-"))
    data, run, log = base / "data", base / "run", base / "server.log"
    as_server = {"user": uid, "group": gid, "extra_groups": []} if os.geteuid() == 0 else {}
    started = False
    try:
        base.chmod(0o755)
        for d in (data, run):
            d.mkdir()
            os.chown(d, uid, gid)
        os.chown(base, uid, gid)
        init = subprocess.run(
            [bindir / "initdb", "-D", data, "-U", "dlcourse", "--auth=trust", "-E", "UTF8",
             "--locale=C", "--no-sync"],
            capture_output=True, text=True, **as_server,
        )  # fmt: skip
        if init.returncode:
            raise Unavailable(f"initdb failed: {init.stderr.strip()[-500:]}")
        port = 5432  # only names the socket file: the folder is private and there is no TCP
        opts = f"-c listen_addresses='' -c unix_socket_directories={run} -p {port} -c fsync=off"
        start = subprocess.run(
            [bindir / "pg_ctl", "-D", data, "-l", log, "-w", "-t", str(START_TIMEOUT_S),
             "-o", opts, "start"],
            capture_output=True, text=True, **as_server,
        )  # fmt: skip
        started = True
        if start.returncode:
            raise Unavailable(f"pg_ctl start failed: {start.stderr.strip()[-300:]} {_tail(log)}")
        yield PostgresServer(base, run, port)
    finally:
        if started:
            subprocess.run([bindir / "pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"],
                           capture_output=True, **as_server)  # fmt: skip
        shutil.rmtree(base, ignore_errors=True)
