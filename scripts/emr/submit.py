#!/usr/bin/env python3
"""Run dhs stages as EMR steps: upload code and config, create (or reuse) a cluster, add one step per stage.

    python scripts/emr/submit.py --config run.yaml --s3-prefix s3://bucket/dhs/run1 \
        [--stages 3,4a,4c,4d] [--cluster-id j-XXXX] [--cluster-config scripts/emr/cluster.yaml] \
        [--mode archive|bootstrap] [--dist dist] [--wait] [--terminate] [--dry-run]

``--dry-run`` prints the exact S3 uploads and EMR RunJobFlow / AddJobFlowSteps requests and makes no call.
The run config's survey_root and output_root should be ``s3://`` URLs (the steps run on the cluster).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
from typing import Any

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STAGE_JOBS = {
    "3": "stage3_parent.py",
    "4a": "stage4a_manifest.py",
    "4c": "stage4c_inject.py",
    "4d": "stage4d_completeness.py",
    "6": "stage6_real_lens_sets.py",
}
ENV_ARCHIVE = "dhs-env.tar.gz"
BOOTSTRAP_PYTHON = "/opt/dhs-venv/bin/python"
DRY_RUN_CLUSTER_ID = "j-DRYRUNCLUSTER"


def load_cluster_config(path: str) -> dict[str, Any]:
    """Read the cluster YAML (see scripts/emr/cluster.yaml)."""
    with open(path) as fh:
        cfg = yaml.safe_load(fh) or {}
    for key in ("release_label", "instance_groups", "service_role", "job_flow_role"):
        if key not in cfg:
            raise SystemExit(f"{path}: missing key {key!r}")
    return cfg


def s3_layout(prefix: str) -> dict[str, str]:
    """Where uploads go below the run's S3 prefix."""
    prefix = prefix.rstrip("/")
    return {
        "config": f"{prefix}/config/run.yaml",
        "jobs": f"{prefix}/code/jobs",
        "dist": f"{prefix}/code/dist",
        "bootstrap": f"{prefix}/code/bootstrap.sh",
    }


def uploads(run_config: str, dist_dir: str, layout: dict[str, str], stages: list[str]) -> list[tuple[str, str]]:
    """(local file, s3 URL) pairs to upload before the steps run."""
    pairs = [(run_config, layout["config"]), (os.path.join(REPO, "scripts", "emr", "bootstrap.sh"), layout["bootstrap"])]
    pairs += [(os.path.join(REPO, "jobs", STAGE_JOBS[s]), f"{layout['jobs']}/{STAGE_JOBS[s]}") for s in stages]
    wheels = sorted(glob.glob(os.path.join(dist_dir, "dhs-*.whl")))
    for path in wheels[-1:] + [os.path.join(dist_dir, ENV_ARCHIVE), os.path.join(REPO, "docker", "install-dhs.sh")]:
        pairs.append((path, f"{layout['dist']}/{os.path.basename(path)}"))
    return pairs


def _configurations(cluster: dict[str, Any]) -> list[dict[str, Any]]:
    conf = [{"Classification": "spark-defaults", "Properties": dict(cluster.get("spark_defaults", {}))}]
    if cluster.get("yarn_site"):
        conf.append({"Classification": "yarn-site", "Properties": dict(cluster["yarn_site"])})
    return conf


def run_job_flow_request(cluster: dict[str, Any], layout: dict[str, str], mode: str, keep_alive: bool) -> dict[str, Any]:
    """The EMR RunJobFlow request for a new cluster."""
    groups = []
    for role in ("master", "core", "task"):
        g = cluster["instance_groups"].get(role)
        if not g or int(g.get("count", 0)) <= 0:
            continue
        group = {
            "Name": f"dhs-{role}",
            "InstanceRole": role.upper(),
            "Market": g.get("market", "ON_DEMAND"),
            "InstanceType": g["instance_type"],
            "InstanceCount": int(g["count"]),
        }
        if cluster.get("ebs_gb_per_node"):
            group["EbsConfiguration"] = {
                "EbsBlockDeviceConfigs": [
                    {"VolumeSpecification": {"VolumeType": "gp3", "SizeInGB": int(cluster["ebs_gb_per_node"])},
                     "VolumesPerInstance": 1}
                ]
            }
        groups.append(group)
    instances: dict[str, Any] = {
        "InstanceGroups": groups,
        "KeepJobFlowAliveWhenNoSteps": bool(keep_alive or cluster.get("keep_alive", False)),
        "TerminationProtected": False,
    }
    if cluster.get("subnet_id"):
        instances["Ec2SubnetId"] = cluster["subnet_id"]
    req: dict[str, Any] = {
        "Name": cluster.get("name", "dhs"),
        "ReleaseLabel": cluster["release_label"],
        "Applications": [{"Name": a} for a in cluster.get("applications", ["Spark"])],
        "Instances": instances,
        "Configurations": _configurations(cluster),
        "ServiceRole": cluster["service_role"],
        "JobFlowRole": cluster["job_flow_role"],
        "VisibleToAllUsers": True,
        "BootstrapActions": [
            {
                "Name": "dhs-install",
                "ScriptBootstrapAction": {"Path": layout["bootstrap"], "Args": [layout["dist"]]},
            }
        ],
        "Tags": [{"Key": "project", "Value": "dhs"}],
    }
    if cluster.get("log_uri"):
        req["LogUri"] = cluster["log_uri"]
    return req


def step(stage: str, layout: dict[str, str], mode: str, overrides: list[str]) -> dict[str, Any]:
    """One EMR step: spark-submit of ``jobs/<stage>.py`` in YARN cluster mode."""
    if stage not in STAGE_JOBS:
        raise SystemExit(f"unknown stage {stage!r}; expected one of {sorted(STAGE_JOBS)}")
    args = ["spark-submit", "--deploy-mode", "cluster", "--master", "yarn"]
    if mode == "archive":
        py = "./environment/bin/python"
        args += ["--archives", f"{layout['dist']}/{ENV_ARCHIVE}#environment"]
    else:
        py = BOOTSTRAP_PYTHON
    args += [
        "--conf", f"spark.pyspark.python={py}",
        "--conf", f"spark.yarn.appMasterEnv.PYSPARK_PYTHON={py}",
        "--conf", f"spark.executorEnv.PYSPARK_PYTHON={py}",
        f"{layout['jobs']}/{STAGE_JOBS[stage]}",
        "--config", layout["config"],
    ]
    for o in overrides:
        args += ["--set", o]
    return {
        "Name": f"dhs stage {stage}",
        "ActionOnFailure": "CANCEL_AND_WAIT",
        "HadoopJarStep": {"Jar": "command-runner.jar", "Args": args},
    }


def add_job_flow_steps_request(cluster_id: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    """The EMR AddJobFlowSteps request."""
    return {"JobFlowId": cluster_id, "Steps": steps}


def output_paths(run_config: str, stages: list[str], overrides: list[str]) -> dict[str, list[str]]:
    """Where each stage writes, from the run config (no input checks: they happen on the cluster)."""
    from dhs.config import load_config
    from dhs.io.outputs import STAGE_OUTPUT_KINDS, stage_output_dir

    cfg = load_config(run_config, overrides, check_inputs=False)
    return {s: [stage_output_dir(cfg, s, k) for k in STAGE_OUTPUT_KINDS[s]] for s in stages}


def submit(args: argparse.Namespace, emr: Any = None, s3: Any = None, out=sys.stdout) -> dict[str, Any]:
    """Do (or, with ``--dry-run``, print) the uploads and EMR requests. Returns what was sent."""
    stages = [s.strip() for s in args.stages.split(",") if s.strip()]
    layout = s3_layout(args.s3_prefix)
    cluster = load_cluster_config(args.cluster_config)
    steps = [step(s, layout, args.mode, args.overrides) for s in stages]
    plan: dict[str, Any] = {
        "uploads": [{"from": a, "to": b} for a, b in uploads(args.config, args.dist, layout, stages)],
        "outputs": output_paths(args.config, stages, args.overrides),
    }
    if not args.cluster_id:
        plan["RunJobFlow"] = run_job_flow_request(cluster, layout, args.mode, args.keep_alive)
    plan["AddJobFlowSteps"] = add_job_flow_steps_request(args.cluster_id or DRY_RUN_CLUSTER_ID, steps)
    if args.dry_run:
        json.dump(plan, out, indent=2)
        out.write("\n")
        return plan

    import boto3
    from botocore.exceptions import WaiterError

    emr = emr or boto3.client("emr", region_name=args.region)
    s3 = s3 or boto3.client("s3", region_name=args.region)
    missing = [item["from"] for item in plan["uploads"] if not os.path.exists(item["from"])]
    if missing:
        raise SystemExit(f"missing files to upload: {', '.join(missing)} (run `make dist` first)")
    for item in plan["uploads"]:
        bucket, _, key = item["to"][len("s3://"):].partition("/")
        with open(item["from"], "rb") as fh:  # single PUT streams the file (objects up to 5 GB)
            s3.put_object(Bucket=bucket, Key=key, Body=fh)
    cluster_id = args.cluster_id
    if not cluster_id:
        cluster_id = emr.run_job_flow(**plan["RunJobFlow"])["JobFlowId"]
        print(f"created cluster {cluster_id}", file=out)
    plan["AddJobFlowSteps"]["JobFlowId"] = cluster_id
    step_ids = emr.add_job_flow_steps(**plan["AddJobFlowSteps"])["StepIds"]
    plan["step_ids"] = step_ids
    if args.wait:
        waiter = emr.get_waiter("step_complete")
        for sid in step_ids:
            try:
                waiter.wait(ClusterId=cluster_id, StepId=sid, WaiterConfig={"Delay": 30, "MaxAttempts": 2880})
            except WaiterError as exc:  # a failed step stops the waiter; its state is printed below
                print(f"step {sid}: {exc}", file=out)
                break
    for sid, st in zip(step_ids, stages):
        state = emr.describe_step(ClusterId=cluster_id, StepId=sid)["Step"]["Status"]["State"]
        print(f"stage {st}: step {sid} {state} -> {', '.join(plan['outputs'][st])}", file=out)
    if args.terminate:
        emr.terminate_job_flows(JobFlowIds=[cluster_id])
        print(f"terminating {cluster_id}", file=out)
    return plan


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", required=True, help="dhs run configuration YAML (s3:// survey_root/output_root)")
    p.add_argument("--s3-prefix", required=True, help="s3://bucket/prefix for code, config and dist uploads")
    p.add_argument("--stages", default="3,4a,4c,4d", help="comma-separated stages (default 3,4a,4c,4d)")
    p.add_argument("--cluster-id", default=None, help="add steps to this running cluster instead of creating one")
    p.add_argument("--cluster-config", default=os.path.join(REPO, "scripts", "emr", "cluster.yaml"))
    p.add_argument("--mode", choices=("archive", "bootstrap"), default="archive",
                   help="archive: ship dist/dhs-env.tar.gz with --archives; bootstrap: use /opt/dhs-venv")
    p.add_argument("--dist", default=os.path.join(REPO, "dist"), help="folder with the wheel and dhs-env.tar.gz")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--region", default=None)
    p.add_argument("--wait", action="store_true", help="wait for the steps and print their states")
    p.add_argument("--terminate", action="store_true", help="terminate the cluster at the end")
    p.add_argument("--keep-alive", action="store_true", help="keep a new cluster alive after the steps")
    p.add_argument("--dry-run", action="store_true", help="print the requests, call nothing")
    return p


def main(argv: list[str] | None = None) -> int:
    submit(build_parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
