"""The Ray cluster files of deploy/ray and the commands of docs/scaling.md stay runnable.

They cannot be run here (no AWS, no Kubernetes), so they are checked against what they rely
on: Ray's own cluster schema, the instance profile and the IAM policy of the EC2 guide, the
README's torch pin, and the real argument parser of ``mmdeepfake prepare``.
"""

from __future__ import annotations

import json
import re
import shlex
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
    policy = json.loads((ROOT / "scripts/ec2/iam-policy.json").read_text())
    readable = {s["Sid"]: s["Resource"] for s in policy["Statement"]}
    src_bucket, src_key = parse_uri(args.src)
    out_bucket, out_key = parse_uri(args.output)
    assert readable["ReadDataset"] == f"arn:aws:s3:::{src_bucket}/dataset/*"
    assert src_key.startswith("dataset/") and out_key.startswith("outputs/")
    assert readable["ReadWriteOutputs"] == f"arn:aws:s3:::{out_bucket}/outputs/*"


def test_every_prepare_command_of_the_scaling_guide_parses():
    text = (ROOT / "docs/scaling.md").read_text()
    blocks = re.findall(r"```(?:bash)?\n(.*?)```", text, flags=re.DOTALL)
    lines = " \n".join(blocks).replace("\\\n", " ").splitlines()
    commands = [line for line in lines if "mmdeepfake prepare " in line]
    assert len(commands) >= 2
    for command in commands:
        assert _prepare_args(command.split(" -- ")[-1]).engine == "ray"
