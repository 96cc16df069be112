"""A Spark standalone cluster on 127.0.0.1 and spark-submit the way an EMR step runs (tests only).

* Spark comes from a hard-linked copy of the pyspark installation outside the repository (the cluster's
  Spark); one master and N workers, each a JVM in its own process group, so that a worker can be killed
  together with its executors and their Python workers.
* Every process starts from a folder outside the repository with an environment scrubbed of PYTHONPATH,
  virtual-env and PySpark variables and of PATH entries inside the repository.
* :func:`spark_submit` runs from a fresh empty working directory that holds only ``environment`` — a link
  to the unpacked ``dhs-env.tar.gz`` built by ``make dist``, as YARN localises ``--archives`` in a container's
  working directory — and driver and executors use ``./environment/bin/python``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENV_PYTHON = "./environment/bin/python"

#: JVM options of every test JVM (master, workers, drivers, executors): the test's JVMs live for seconds to
#: a minute and run little JVM code, so the client compiler alone (no C2) is enough and saves ~40 % of each
#: JVM's start-up CPU time. It changes no result.
TEST_JAVA_OPTIONS = "-XX:TieredStopAtLevel=1"

#: Test-sized settings passed to every submission (2 workers of 1 core and 1500 MB on 127.0.0.1).
TEST_CONF: dict[str, str] = {
    "spark.executor.memory": "1g",
    "spark.executor.cores": "1",
    "spark.ui.enabled": "false",
    "spark.task.maxFailures": "8",
    "spark.driver.extraJavaOptions": TEST_JAVA_OPTIONS,
    "spark.executor.extraJavaOptions": TEST_JAVA_OPTIONS,
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spark_home_copy(dest: Path) -> Path:
    """A hard-linked copy (instant, same file system) of the pyspark installation at ``dest``, so that no
    path of the cluster's Spark lies inside the repository; a plain copy where links are not possible."""
    import pyspark

    src = Path(pyspark.__file__).resolve().parent
    try:
        subprocess.run(["cp", "-al", str(src), str(dest)], check=True, capture_output=True)
    except subprocess.CalledProcessError:
        shutil.rmtree(dest, ignore_errors=True)
        shutil.copytree(src, dest, symlinks=True)
    return dest


def scrubbed_env(spark_home: Path) -> dict[str, str]:
    """os.environ without anything that could make a process import dhs from the repository."""
    drop_prefix = ("PYTHON", "PYSPARK", "VIRTUAL_ENV", "CONDA", "SPARK_", "DHS_", "PYTEST")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_prefix) and k not in ("PWD", "OLDPWD")}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep)
                                  if p and not Path(p).resolve().is_relative_to(REPO))
    env["SPARK_HOME"] = str(spark_home)
    env["SPARK_LOCAL_IP"] = "127.0.0.1"
    return env


@dataclass
class StandaloneCluster:
    master_url: str
    webui_port: int
    workdir: Path
    spark_home: Path
    master: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)
    worker_args: list[tuple[list[str], Path, Path]] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        return scrubbed_env(self.spark_home)

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

    def restart_worker(self, i: int) -> None:
        """Start worker ``i`` again (after :meth:`kill_worker`) and wait until it is ALIVE."""
        args, log, cwd = self.worker_args[i]
        self.workers[i] = _start(self.spark_home, args, log.with_suffix(f".{int(time.time())}.log"), cwd)
        _wait_alive(self, len(self.workers))

    def executor_logs(self) -> list[Path]:
        """The stderr/stdout files of every executor the workers have run."""
        return sorted(p for p in self.workdir.glob("worker*/app-*/*/std*") if p.is_file())


def _start(spark_home: Path, args: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    fh = open(log, "wb")  # noqa: SIM115 - stays open as the child's stdout
    env = {**scrubbed_env(spark_home), "SPARK_DAEMON_JAVA_OPTS": TEST_JAVA_OPTIONS}
    return subprocess.Popen([str(spark_home / "bin" / "spark-class"), *args], stdout=fh, stderr=subprocess.STDOUT,
                            env=env, cwd=cwd, start_new_session=True)


def _wait_alive(cluster: StandaloneCluster, n_workers: int) -> None:
    deadline = time.time() + 120
    while cluster.alive_workers() < n_workers:
        if time.time() > deadline:
            raise RuntimeError(f"standalone cluster: fewer than {n_workers} workers alive; logs in {cluster.workdir}")
        if cluster.master.poll() is not None:
            raise RuntimeError(f"Spark master exited; see {cluster.workdir / 'master.log'}")
        time.sleep(1)


@contextmanager
def standalone_cluster(workdir: Path, spark_home: Path, n_workers: int = 2, cores: int = 1,
                       memory: str = "1500m"):
    """Start master + workers on 127.0.0.1, wait until all workers are ALIVE, stop everything on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    port, ui = free_port(), free_port()
    master = _start(spark_home, ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port),
                                 "--webui-port", str(ui)], workdir / "master.log", workdir)
    cluster = StandaloneCluster(f"spark://127.0.0.1:{port}", ui, workdir, spark_home, master)
    try:
        for i in range(n_workers):
            wdir = workdir / f"worker{i}"
            wdir.mkdir(exist_ok=True)
            args = ["org.apache.spark.deploy.worker.Worker", cluster.master_url, "--host", "127.0.0.1",
                    "--cores", str(cores), "--memory", memory, "--webui-port", "0", "--work-dir", str(wdir)]
            cluster.worker_args.append((args, workdir / f"worker{i}.log", wdir))
            cluster.workers.append(_start(spark_home, args, workdir / f"worker{i}.log", wdir))
        _wait_alive(cluster, n_workers)
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


def fresh_workdir(path: Path, env_dir: Path) -> Path:
    """An empty folder outside the repository holding only ``environment`` → the unpacked environment."""
    path.mkdir(parents=True)
    (path / "environment").symlink_to(env_dir, target_is_directory=True)
    assert not path.resolve().is_relative_to(REPO)
    return path


def spark_submit(cluster: StandaloneCluster, args: list[str], workdir: Path, log: Path,
                 wait: bool = True, check: bool = True) -> subprocess.Popen:
    """``spark-submit ARGS`` from ``workdir`` (see :func:`fresh_workdir`) with the cluster's scrubbed env."""
    cmd = [str(cluster.spark_home / "bin" / "spark-submit"), *args]
    fh = open(log, "wb")  # noqa: SIM115 - stays open as the child's stdout
    proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, env=cluster.env, cwd=workdir)
    if wait:
        rc = proc.wait(timeout=1200)
        if check and rc != 0:
            raise RuntimeError(f"spark-submit failed ({rc}): {' '.join(cmd)}\nlog: {log}\n{log.read_text()[-4000:]}")
    return proc


def client_mode_args(cluster: StandaloneCluster, archive: Path, script: Path, script_args: list[str],
                     extra_conf: dict[str, str] | None = None) -> list[str]:
    """spark-submit arguments as an EMR step gives them (scripts/emr/submit.py, archive mode), in client
    mode on the standalone master (standalone clusters run Python drivers in client mode only)."""
    args = ["--master", cluster.master_url, "--deploy-mode", "client", "--archives", f"{archive}#environment",
            "--conf", f"spark.pyspark.python={ENV_PYTHON}", "--conf", f"spark.executorEnv.PYSPARK_PYTHON={ENV_PYTHON}"]
    for k, v in {**TEST_CONF, **(extra_conf or {})}.items():
        args += ["--conf", f"{k}={v}"]
    return [*args, str(script), *script_args]


def emr_step_args(step: dict, cluster: StandaloneCluster, s3_to_local: dict[str, Path]) -> list[str]:
    """The arguments of an EMR step (after ``spark-submit``), run on the standalone master in client mode:
    ``--master yarn --deploy-mode cluster`` become the standalone master and client mode, uploaded ``s3://``
    files their local copies; everything else is kept as the step has it."""
    args = list(step["HadoopJarStep"]["Args"])
    assert args[0] == "spark-submit"
    out: list[str] = []
    it = iter(args[1:])
    for a in it:
        if a == "--master":
            assert next(it) == "yarn"
            out += ["--master", cluster.master_url]
            for k, v in TEST_CONF.items():
                out += ["--conf", f"{k}={v}"]
        elif a == "--deploy-mode":
            assert next(it) == "cluster"
            out += ["--deploy-mode", "client"]
        else:
            base, sep, frag = a.partition("#")
            out.append(str(s3_to_local[base]) + sep + frag if base in s3_to_local else a)
    return out
