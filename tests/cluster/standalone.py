"""A Spark standalone cluster on 127.0.0.1 started from the pyspark installation (tests only).

One master and N workers, each a separate JVM (``spark-class ...Master`` / ``...Worker``) in its own
process group, so a worker can be killed together with its executors and their Python workers.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pyspark

SPARK_HOME = Path(pyspark.__file__).resolve().parent
SPARK_CLASS = SPARK_HOME / "bin" / "spark-class"
SPARK_SUBMIT = SPARK_HOME / "bin" / "spark-submit"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class StandaloneCluster:
    master_url: str
    webui_port: int
    workdir: Path
    master: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)

    def state(self) -> dict:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.webui_port}/json/", timeout=5) as r:
            return json.loads(r.read())

    def alive_workers(self) -> int:
        try:
            return sum(1 for w in self.state().get("workers", []) if w.get("state") == "ALIVE")
        except OSError:
            return 0

    def kill_worker(self, i: int) -> None:
        """SIGKILL worker ``i`` with its executors and Python workers (its whole process group)."""
        os.killpg(self.workers[i].pid, signal.SIGKILL)
        self.workers[i].wait(timeout=30)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["SPARK_HOME"] = str(SPARK_HOME)
    env.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    env.pop("PYSPARK_PYTHON", None)
    env.pop("PYSPARK_DRIVER_PYTHON", None)
    return env


def _start(args: list[str], log: Path) -> subprocess.Popen:
    fh = open(log, "wb")  # noqa: SIM115 - stays open as the child's stdout
    return subprocess.Popen(
        [str(SPARK_CLASS), *args], stdout=fh, stderr=subprocess.STDOUT, env=_env(), start_new_session=True
    )


@contextmanager
def standalone_cluster(workdir: Path, n_workers: int = 2, cores: int = 1, memory: str = "1500m"):
    """Start master + workers on 127.0.0.1, wait until all workers are ALIVE, stop everything on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, ui = free_port(), free_port()
    master = _start(
        ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port), "--webui-port", str(ui)],
        workdir / "master.log",
    )
    cluster = StandaloneCluster(f"spark://127.0.0.1:{port}", ui, workdir, master)
    try:
        for i in range(n_workers):
            wdir = workdir / f"worker{i}"
            wdir.mkdir(exist_ok=True)
            cluster.workers.append(
                _start(
                    ["org.apache.spark.deploy.worker.Worker", cluster.master_url, "--host", "127.0.0.1",
                     "--cores", str(cores), "--memory", memory, "--webui-port", str(free_port()),
                     "--work-dir", str(wdir)],
                    workdir / f"worker{i}.log",
                )
            )
        deadline = time.time() + 120
        while cluster.alive_workers() < n_workers:
            if time.time() > deadline:
                raise RuntimeError(f"standalone cluster did not start; logs in {workdir}")
            if master.poll() is not None:
                raise RuntimeError(f"Spark master exited; see {workdir / 'master.log'}")
            time.sleep(1)
        yield cluster
    finally:
        for p in [*cluster.workers, master]:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        for p in [*cluster.workers, master]:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)


def spark_submit(cluster: StandaloneCluster, script: str, args: list[str], env_archive: Path, log: Path,
                 extra_conf: dict[str, str] | None = None, wait: bool = True) -> subprocess.Popen:
    """spark-submit ``script`` to the cluster in client mode with the packed environment on executors."""
    conf = {
        "spark.pyspark.python": "./environment/bin/python",
        "spark.pyspark.driver.python": sys.executable,
        "spark.executor.memory": "1g",
        "spark.ui.enabled": "false",
        "spark.task.maxFailures": "8",
        "spark.sql.shuffle.partitions": "4",
    }
    conf.update(extra_conf or {})
    cmd = [str(SPARK_SUBMIT), "--master", cluster.master_url, "--archives", f"{env_archive}#environment"]
    for k, v in conf.items():
        cmd += ["--conf", f"{k}={v}"]
    cmd += [script, *args]
    env = _env()
    fh = open(log, "wb")  # noqa: SIM115 - stays open as the child's stdout
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env)
    if wait:
        rc = proc.wait(timeout=1200)
        if rc != 0:
            raise RuntimeError(f"spark-submit {script} failed ({rc}); log: {log}\n{log.read_text()[-4000:]}")
    return proc
