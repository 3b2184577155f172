"""The Ray cluster files of deploy/ray and the commands of docs/scaling.md stay runnable.

They cannot be run here (no AWS, no Kubernetes), so they are checked against what they rely
on: Ray's own cluster schema, the instance profile and the IAM policy of the EC2 guide, the
README's torch pin, and the real argument parser of ``mmdeepfake prepare``.
"""

from __future__ import annotations

import json
import re
import shlex
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml

from mmdeepfake.cli.prepare import build_parser
from mmdeepfake.data.storage import parse_uri

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "ray"


def _torch_pin() -> str:
    return re.search(r"pip install torch==(\S+)", (ROOT / "README.md").read_text()).group(1)


def _install_order_ok(commands: list[str]) -> bool:
    """torch at the README's pin is installed before mmdeepfake with its scale extra."""
    torch = [i for i, c in enumerate(commands) if f"torch=={_torch_pin()}" in c]
    ours = [i for i, c in enumerate(commands) if "mmdeepfake[scale]" in c]
    return bool(torch and ours) and torch[0] < ours[0]


def _prepare_args(command: str):
    """A ``mmdeepfake prepare ...`` command line parsed by the command's own parser."""
    words = shlex.split(command)
    start = words.index("prepare")
    assert words[start - 1] == "mmdeepfake"
    return build_parser().parse_args(words[start + 1 :])


def test_the_ec2_cluster_follows_rays_schema_and_the_ec2_guide():
    ray_autoscaler = pytest.importorskip("ray.autoscaler")
    jsonschema = pytest.importorskip("jsonschema")
    config = yaml.safe_load((DEPLOY / "cluster-ec2.yaml").read_text())
    schema = json.loads((Path(ray_autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)

    guide = (ROOT / "scripts/ec2/README.md").read_text()
    profile = re.search(r"--instance-profile-name (\S+)", guide).group(1)
    types = config["available_node_types"]
    assert set(types) == {"head", "cpu_worker", "gpu_worker"}
    for node in types.values():
        arn = node["node_config"]["IamInstanceProfile"]["Arn"]
        assert arn.endswith(f":instance-profile/{profile}")
    assert types["head"]["resources"] == {"CPU": 0}  # the driver's node: no clips there
    assert types["gpu_worker"]["min_workers"] == 0  # optional
    assert _install_order_ok(config["setup_commands"])
    assert _install_order_ok(types["gpu_worker"]["worker_setup_commands"])


def test_the_rayjob_runs_prepare_on_ray_with_irsa_within_the_policy():
    account, job = yaml.safe_load_all((DEPLOY / "rayjob.yaml").read_text())
    assert (account["kind"], job["kind"]) == ("ServiceAccount", "RayJob")
    assert account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith(
        "arn:aws:iam::"
    )
    cluster = job["spec"]["rayClusterSpec"]
    pods = [job["spec"]["submitterPodTemplate"], cluster["headGroupSpec"]["template"]]
    pods += [group["template"] for group in cluster["workerGroupSpecs"]]
    images = {container["image"] for pod in pods for container in pod["spec"]["containers"]}
    assert {pod["spec"]["serviceAccountName"] for pod in pods} == {account["metadata"]["name"]}
    assert len(images) == 1

    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{cluster['rayVersion']}-" in dockerfile
    assert _install_order_ok(dockerfile.splitlines())

    args = _prepare_args(job["spec"]["entrypoint"])
    assert (args.engine, args.address, args.no_progress) == ("ray", "auto", True)
    src_bucket, src_key = parse_uri(args.src)
    out_bucket, out_key = parse_uri(args.output)
    assert _policy_allows("s3:GetObject", f"arn:aws:s3:::{src_bucket}/{src_key}/x.mp4")
    assert _policy_allows("s3:PutObject", f"arn:aws:s3:::{out_bucket}/{out_key}/x.jpg")
    assert not _policy_allows("s3:PutObject", f"arn:aws:s3:::{src_bucket}/{src_key}/x.mp4")


def _policy_allows(action: str, arn: str) -> bool:
    """Whether the EC2 guide's IAM policy grants ``action`` on the object ``arn``."""
    policy = json.loads((ROOT / "scripts/ec2/iam-policy.json").read_text())
    for statement in policy["Statement"]:
        resources = statement["Resource"]
        resources = [resources] if isinstance(resources, str) else resources
        if action in statement["Action"] and any(fnmatch(arn, r) for r in resources):
            return True
    return False


def test_every_prepare_command_of_the_scaling_guide_parses():
    text = (ROOT / "docs/scaling.md").read_text()
    blocks = re.findall(r"```(?:bash)?\n(.*?)```", text, flags=re.DOTALL)
    lines = " \n".join(blocks).replace("\\\n", " ").splitlines()
    commands = [line for line in lines if "mmdeepfake prepare " in line]
    assert len(commands) >= 2
    for command in commands:
        assert _prepare_args(command.split(" -- ")[-1]).engine == "ray"


def test_every_predict_command_of_the_scaling_guide_parses():
    from mmdeepfake.cli import predict

    text = (ROOT / "docs/scaling.md").read_text()
    blocks = re.findall(r"```(?:bash)?\n(.*?)```", text, flags=re.DOTALL)
    lines = " \n".join(blocks).replace("\\\n", " ").splitlines()
    commands = [line.split(" -- ")[-1] for line in lines if "mmdeepfake predict " in line]
    assert commands
    for command in commands:
        words = shlex.split(command)
        parser = predict.build_parser()
        args = parser.parse_args(words[words.index("predict") + 1 :])
        predict._check_engine(parser, args)  # a flag of the other engine is a usage error
        assert (args.engine, args.address) == ("ray", "auto")
        assert args.output.startswith("s3://")
