"""scripts/emr/submit.py: the EMR requests are valid against botocore's service model; no network."""

from __future__ import annotations

import io
import json
from pathlib import Path

import boto3
import pytest
from botocore.stub import ANY, Stubber
from botocore.validate import validate_parameters

from .emr_plan import load_submit

REPO = Path(__file__).resolve().parents[2]
submit = load_submit()


@pytest.fixture()
def run_config(tmp_path):
    p = tmp_path / "run.yaml"
    p.write_text(
        "survey_root: s3://survey/dr10\noutput_root: s3://out/dhs\nvariant: v2_baseline_dr10\n"
        "experiment_id: exp1\n"
    )
    return p


@pytest.fixture()
def dist(tmp_path):
    d = tmp_path / "dist"
    d.mkdir()
    (d / "dhs-0.1.0-py3-none-any.whl").write_bytes(b"wheel")
    (d / "dhs-env.tar.gz").write_bytes(b"env")
    return d


def _emr():
    return boto3.client("emr", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")


def _s3():
    return boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")


def _args(run_config, dist, *extra):
    return submit.build_parser().parse_args(
        ["--config", str(run_config), "--s3-prefix", "s3://code-bucket/dhs/run1", "--dist", str(dist),
         "--stages", "3,4a,4c,4d,6", *extra]
    )


def test_dry_run_prints_valid_requests_for_all_stages(run_config, dist):
    out = io.StringIO()
    plan = submit.submit(_args(run_config, dist, "--dry-run", "--set", "seed=99"), out=out)
    printed = json.loads(out.getvalue())
    assert printed == json.loads(json.dumps(plan))
    model = _emr().meta.service_model
    validate_parameters(plan["RunJobFlow"], model.operation_model("RunJobFlow").input_shape)
    validate_parameters(plan["AddJobFlowSteps"], model.operation_model("AddJobFlowSteps").input_shape)
    steps = plan["AddJobFlowSteps"]["Steps"]
    assert [s["Name"] for s in steps] == [f"dhs stage {s}" for s in ("3", "4a", "4c", "4d", "6")]
    for s, job in zip(steps, ("stage3_parent.py", "stage4a_manifest.py", "stage4c_inject.py",
                              "stage4d_completeness.py", "stage6_real_lens_sets.py")):
        args = s["HadoopJarStep"]["Args"]
        assert args[:3] == ["spark-submit", "--deploy-mode", "cluster"]
        assert "s3://code-bucket/dhs/run1/code/dist/dhs-env.tar.gz#environment" in args
        assert f"s3://code-bucket/dhs/run1/code/jobs/{job}" in args
        assert args[args.index("--config") + 1] == "s3://code-bucket/dhs/run1/config/run.yaml"
        assert args[-2:] == ["--set", "seed=99"]
        assert (REPO / "jobs" / job).is_file()
    assert plan["outputs"]["4c"] == ["s3://out/dhs/phase4c/v2_baseline_dr10/stamps/exp1",
                                     "s3://out/dhs/phase4c/v2_baseline_dr10/metrics/exp1"]
    rjf = plan["RunJobFlow"]
    assert rjf["ReleaseLabel"].startswith("emr-")
    assert {g["InstanceRole"] for g in rjf["Instances"]["InstanceGroups"]} == {"MASTER", "CORE"}
    assert rjf["BootstrapActions"][0]["ScriptBootstrapAction"]["Path"].endswith("bootstrap.sh")
    props = rjf["Configurations"][0]["Properties"]
    assert props["spark.sql.execution.arrow.pyspark.enabled"] == "true"


def test_bootstrap_mode_uses_installed_env(run_config, dist):
    plan = submit.submit(_args(run_config, dist, "--dry-run", "--mode", "bootstrap"), out=io.StringIO())
    args = plan["AddJobFlowSteps"]["Steps"][0]["HadoopJarStep"]["Args"]
    assert "--archives" not in args
    assert f"spark.executorEnv.PYSPARK_PYTHON={submit.BOOTSTRAP_PYTHON}" in args


def test_real_run_sends_uploads_cluster_steps_and_teardown(run_config, dist):
    emr, s3 = _emr(), _s3()
    args = _args(run_config, dist, "--terminate")
    plan = submit.submit(_args(run_config, dist, "--dry-run"), out=io.StringIO())
    with Stubber(emr) as es, Stubber(s3) as ss:
        for _ in plan["uploads"]:
            ss.add_response("put_object", {}, {"Bucket": ANY, "Key": ANY, "Body": ANY})
        es.add_response("run_job_flow", {"JobFlowId": "j-NEW"}, plan["RunJobFlow"])
        steps_req = dict(plan["AddJobFlowSteps"], JobFlowId="j-NEW")
        es.add_response("add_job_flow_steps", {"StepIds": [f"s-{i}" for i in range(5)]}, steps_req)
        for i in range(5):
            es.add_response(
                "describe_step",
                {"Step": {"Status": {"State": "PENDING"}}},
                {"ClusterId": "j-NEW", "StepId": f"s-{i}"},
            )
        es.add_response("terminate_job_flows", {}, {"JobFlowIds": ["j-NEW"]})
        out = io.StringIO()
        sent = submit.submit(args, emr=emr, s3=s3, out=out)
        es.assert_no_pending_responses()
        ss.assert_no_pending_responses()
    assert sent["step_ids"] == [f"s-{i}" for i in range(5)]
    text = out.getvalue()
    assert "created cluster j-NEW" in text and "terminating j-NEW" in text
    assert "stage 4c: step s-2 PENDING -> s3://out/dhs/phase4c/v2_baseline_dr10/stamps/exp1" in text


def test_missing_dist_is_a_clear_error(run_config, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SystemExit, match="run `make dist` first"):
        submit.submit(_args(run_config, empty, "--cluster-id", "j-1"), emr=_emr(), s3=_s3(), out=io.StringIO())
