"""Cluster placement on a fake multi-node Ray, and the launcher YAML files against Ray's own schema.

The fake cluster (ray.cluster_utils.Cluster, all on this machine): a head with no CPUs for work,
a simulator node offering the `simulator` resource, and a node with one logical GPU.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from raysurr.config import LabelingConfig, ModelConfig, ResourcesConfig, SimulatorConfig, TrainingConfig
from raysurr.errors import ResourceError
from raysurr.simulators import build_simulator
from tests.conftest import REPO

pytestmark = pytest.mark.timeout(300)


@pytest.mark.parametrize("name", ["cluster.yaml", "cluster-onprem.yaml"])
def test_launcher_configs_validate_against_rays_schema(name):
    from ray.autoscaler._private.util import prepare_config, validate_config

    raw = yaml.safe_load((REPO / name).read_text())
    config = prepare_config(raw)  # what `ray up` does before validating: merge the provider's defaults
    validate_config(config)
    starts = " ".join(config["head_start_ray_commands"] + config["worker_start_ray_commands"])
    assert "--dashboard-host=127.0.0.1" in starts and "0.0.0.0" not in starts  # dashboard only via the SSH tunnel
    assert starts.count("RAY_AUTH_MODE=token") == 2  # token authentication on head and workers
    assert "~/.ray/auth_token" in config["file_mounts"]
    assert all("2.60.0" in command for command in config["setup_commands"] if "pip install" in command)


def test_cloud_config_is_least_privilege():
    """Every node type brings its own security group and instance profile (so the launcher's defaults, SSH from
    0.0.0.0/0 and a head with full EC2 and S3 access, never apply), and the stack that makes them is sound."""
    nodes = yaml.safe_load((REPO / "cluster.yaml").read_text())["available_node_types"]
    for name, node in nodes.items():
        assert node["node_config"]["SecurityGroupIds"], name
        profile = node["node_config"]["IamInstanceProfile"]["Arn"]
        assert profile.endswith("HeadInstanceProfileArn" if name == "head" else "WorkerInstanceProfileArn"), name
    stack = yaml.safe_load((REPO / "cluster-aws-security.yaml").read_text())
    resources = stack["Resources"]
    ingress = resources["NodeSecurityGroup"]["Properties"]["SecurityGroupIngress"]
    assert ingress == [{"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": {"Ref": "AllowedCidr"}}]
    assert "Policies" not in resources["WorkerRole"]["Properties"]
    statements = resources["HeadRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    actions = [a for s in statements for a in ([s["Action"]] if isinstance(s["Action"], str) else s["Action"])]
    assert not any(a.startswith(("s3:", "iam:Create", "iam:Put", "iam:Attach")) or a.endswith("*") for a in actions)
    assert set(stack["Outputs"]) == {"SecurityGroupId", "HeadInstanceProfileArn", "WorkerInstanceProfileArn"}


def test_cloud_config_has_simulator_and_gpu_worker_types():
    nodes = yaml.safe_load((REPO / "cluster.yaml").read_text())["available_node_types"]
    assert nodes["head"]["resources"] == {"CPU": 0}
    assert nodes["simulators"]["resources"]["simulator"] > 0
    assert nodes["gpu"]["node_config"]["InstanceType"].startswith(("g", "p"))
    assert all(nodes[name]["max_workers"] >= nodes[name]["min_workers"] for name in ("simulators", "gpu"))


@pytest.fixture(scope="module")
def fake_cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    ray.shutdown()  # the local Ray other modules share, if one runs: this module needs its own cluster
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    simulators = cluster.add_node(num_cpus=2, resources={"simulator": 2})
    gpu = cluster.add_node(num_cpus=1, num_gpus=1)
    ray.init(address=cluster.address)
    cluster.wait_for_nodes()
    yield ray, simulators.node_id, gpu.node_id
    ray.shutdown()
    cluster.shutdown()


def test_simulator_actors_land_only_on_simulator_nodes(fake_cluster, tmp_path):
    from raysurr.data.labels import LabelStore
    from raysurr.distributed.labeling import Labeler

    ray, simulator_node, _ = fake_cluster
    resources = ResourcesConfig(simulators=2, cpus_per_simulator=1)
    labeler = Labeler(SimulatorConfig(options={"grid": 16}), (), LabelingConfig(chunk_size=4), resources)
    try:
        nodes = ray.get([actor.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id())
                         for actor in labeler.actors])  # fmt: skip
        assert nodes == [simulator_node, simulator_node]
        sim = build_simulator(SimulatorConfig(options={"grid": 16}))
        labeler_params = sim.sample(8, np.random.default_rng(0))
        store = LabelStore(tmp_path / "labels", tmp_path / "failures")
        assert labeler.label(np.arange(8), labeler_params, store)["labeled"] == 8
        nodes = set(store.labels.read(["node"]).column("node").to_pylist())
        assert len(nodes) == 1  # every label was made on the one simulator node
    finally:
        labeler.close()


def test_training_workers_ask_for_gpus_and_land_on_the_gpu_node(fake_cluster):
    from raysurr.distributed.training import scaling_config

    ray, _, gpu_node = fake_cluster
    scaling = scaling_config(ResourcesConfig(train_workers=1, cpus_per_train_worker=1, use_gpu=True))
    assert scaling.use_gpu and scaling.resources_per_worker == {"CPU": 1, "GPU": 1}
    half = scaling_config(ResourcesConfig(use_gpu=True, gpus_per_train_worker=0.5))
    assert half.resources_per_worker["GPU"] == 0.5

    @ray.remote
    def where() -> str:
        return ray.get_runtime_context().get_node_id()

    # A task with a worker's resource request is placed where those resources are.
    assert ray.get(where.options(**_as_options(scaling.resources_per_worker)).remote()) == gpu_node


def _as_options(resources: dict) -> dict:
    return {"num_cpus": resources.get("CPU", 0), "num_gpus": resources.get("GPU", 0)}


@pytest.mark.timeout(60)  # the point: an error, not a worker group pending forever
def test_requests_no_node_can_hold_fail_at_once(fake_cluster, tmp_path):
    from raysurr.distributed.labeling import Labeler
    from raysurr.distributed.scoring import score_pool
    from raysurr.distributed.training import fit
    from raysurr.models.fitting import FitSpec

    with pytest.raises(ResourceError, match=r"each training worker asks for 1 CPU, 2 GPU, but no node .* 1 GPU"):
        fit(FitSpec.of(ModelConfig(), (1, 1), TrainingConfig(), 0), {},
            ResourcesConfig(use_gpu=True, gpus_per_train_worker=2), tmp_path)  # fmt: skip
    with pytest.raises(ResourceError, match="each simulator actor asks for 4 CPU, 1 simulator"):
        Labeler(SimulatorConfig(), (), LabelingConfig(), ResourcesConfig(simulators=1, cpus_per_simulator=4))
    with pytest.raises(ResourceError, match="each scoring actor asks for 1 CPU, 3 GPU"):
        score_pool(tmp_path, None, ResourcesConfig(use_gpu=True, gpus_per_score_actor=3))


def test_a_command_without_address_starts_its_own_ray_beside_a_running_cluster(fake_cluster):
    """`ray start` (here the fake cluster) records its address for Ray to join by default; a raysurr command
    given no --address starts a local Ray anyway, as documented, instead of joining whatever runs here."""
    from tests.conftest import run_command

    probe = ("from raysurr.distributed.runtime import connect; import ray; connect(num_cpus=1, dashboard=False); "
             "print(ray.cluster_resources().get('simulator', 0), len(ray.nodes()))")  # fmt: skip
    result = run_command("-c", probe, env={"RAY_ADDRESS": ""}, timeout=120)  # an empty RAY_ADDRESS is none to Ray
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["0", "1"]  # one node of its own, not the fake cluster's three


def test_a_command_joins_the_cluster_ray_address_names(fake_cluster, tmp_path):
    """As a `ray job submit` entrypoint: no --address, RAY_ADDRESS set. The command must run on that cluster rather
    than start a private Ray: its simulator actor asks for a GPU, which only the fake cluster has (a private Ray on
    this machine refuses the request in one line). The cluster itself is left running."""
    ray, _, gpu_node = fake_cluster
    from tests.conftest import run_command

    args = [
        "-m",
        "raysurr.dataset",
        "--n",
        "6",
        "--out",
        str(tmp_path / "data"),
        "--set",
        "simulator.grid=16",
        "--set",
        "simulator.radius=2",
        "--set",
        "resources.gpus_per_simulator=1",
        "--set",
        "resources.simulators=1",
        "--set",
        "resources.simulator_resource=null",
    ]
    address = ray.get_runtime_context().gcs_address
    joined = run_command(*args, env={"RAY_ADDRESS": address})
    assert joined.returncode == 0, joined.stderr
    assert "on 1 actors" in joined.stderr or "on 1 actor" in joined.stderr
    private_args = [str(tmp_path / "private") if a.endswith("data") else a for a in args]
    private = run_command(*private_args, env={"RAY_ADDRESS": ""})
    assert private.returncode == 2 and "each simulator actor asks for 1 CPU, 1 GPU" in private.stderr
    assert ray.is_initialized() and gpu_node in {n["NodeID"] for n in ray.nodes() if n["Alive"]}


def test_on_an_autoscaling_cluster_the_pool_is_sized_from_its_declared_capacity(monkeypatch):
    """`ray up cluster.yaml` starts the head (CPU 0) and no workers: sizing the simulator pool by the alive nodes gave
    one actor. The node types the autoscaler may launch, at their max_workers, count too."""
    from types import SimpleNamespace

    import ray

    from raysurr.distributed import labeling, runtime

    nodes = yaml.safe_load((REPO / "cluster.yaml").read_text())["available_node_types"]
    simulators = nodes["simulators"]
    groups = [SimpleNamespace(resources={"CPU": 16, **simulators["resources"]}, max_count=simulators["max_workers"]),
              SimpleNamespace(resources={"CPU": 8, "GPU": 1}, max_count=nodes["gpu"]["max_workers"])]  # fmt: skip
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 0.0})  # the head alone
    monkeypatch.setattr(runtime, "autoscaling_groups", lambda: groups)
    capacity, pending = runtime.cluster_capacity()
    assert pending and capacity["simulator"] == 8 * 16 and capacity["CPU"] == 8 * 16 + 4 * 8
    assert labeling.simulator_actor_count(ResourcesConfig()) == 128  # one per simulator slot, not one in all
    assert labeling.simulator_actor_count(ResourcesConfig(simulators=5)) == 5  # a count given wins
    monkeypatch.setattr(runtime, "autoscaling_groups", lambda: [])
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 6.0})
    assert labeling.simulator_actor_count(ResourcesConfig()) == 6 and not runtime.cluster_capacity()[1]
