"""docker-compose.yml (the workflow plus a vLLM server) and configs/qwen3-4b-vllm-server.yaml, checked as far
as a machine without a Docker engine or a GPU allows: the Compose Specification's JSON schema, `docker compose
config` (the Compose v2 binary, from tests/support/ensure_compose.sh), the Dockerfile's inputs, and the facts
that tie the vLLM service to the workflow's config. Not run here: building the image, pulling
vllm/vllm-openai, starting either container.

tests/support/compose-spec.json is schema/compose-spec.json of the compose-spec/compose-spec repository at
commit 170098ba07d9f53c383a41bfd4c5166b0a4529a6 (the file last changed in a08f8d51631b7127ddac3d2c65537db429d0f1d0;
Apache-2.0), unchanged.
"""

import copy
import fnmatch
import json
import os
import re
import subprocess
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import jsonschema
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
SERVER_CONFIG = "configs/qwen3-4b-vllm-server.yaml"
QWEN_CONFIGS = ["configs/qwen3-4b.yaml", SERVER_CONFIG]
SERVER, WORKFLOW = "vllm", "workflow"


def load(config_path: str) -> dict:
    from evoswarm.config import load_config

    cwd = os.getcwd()
    os.chdir(REPO)  # persona and task paths are relative to the repository
    try:
        return load_config(config_path)
    finally:
        os.chdir(cwd)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def server_config() -> dict:
    return load(SERVER_CONFIG)


# Parses a `vllm serve` command line with vLLM's own parser and checks (choices, validation), and prints
# what the server would run with. Needs no model: the engine config is never built.
VLLM_SERVE_ARGS = """
import json, sys
from vllm.config import LoRAConfig
from vllm.engine.arg_utils import AsyncEngineArgs
from vllm.entrypoints.cli.serve import ServeSubcommand
from vllm.utils.argparse_utils import FlexibleArgumentParser

parser, serve = FlexibleArgumentParser(), ServeSubcommand()
serve.subparser_init(parser.add_subparsers())
args = parser.parse_args(["serve", *sys.argv[1:]])
serve.validate(args)
args.model = args.model_tag
engine = AsyncEngineArgs.from_cli_args(args)
lora = LoRAConfig(max_lora_rank=engine.max_lora_rank, max_loras=engine.max_loras, max_cpu_loras=engine.max_cpu_loras)
print(json.dumps({
    "served_model_name": engine.served_model_name, "revision": engine.revision, "enable_lora": engine.enable_lora,
    "max_lora_rank": lora.max_lora_rank, "max_loras": lora.max_loras, "port": args.port,
    "lora_target_modules": engine.lora_target_modules,
}))
"""


@pytest.fixture(scope="module")
def served(compose, tmp_path_factory) -> dict:
    """What the vLLM service runs with, as vLLM 0.32 (the pinned image's release) reads its command;
    `model` is the command's model, the name vLLM serves the base under unless --served-model-name says."""
    service = compose["services"][SERVER]
    assert service["entrypoint"] == ["vllm", "serve"], service["entrypoint"]
    # Compose fills ${VAR:-default} from the environment; the defaults are what a plain `up` runs.
    model, *flags = [re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(a)) for a in service["command"]]
    found = subprocess.run([str(REPO / "tests/support/ensure_vllm.sh")], capture_output=True, text=True, timeout=1200)
    assert found.returncode == 0, f"no vLLM venv: {found.stderr[-2000:]}"
    # Offline, vLLM's EngineArgs resolve a hub id in the local cache, where the weights are not: a local
    # folder stands in for the model, which is never loaded.
    stand_in = tmp_path_factory.mktemp("model")
    run = subprocess.run(
        [found.stdout.split()[-1], "-c", VLLM_SERVE_ARGS, str(stand_in), *flags],
        capture_output=True, text=True, timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    assert run.returncode == 0, f"vLLM refuses the service's command: {run.stderr[-2000:]}"
    return {**json.loads(run.stdout.splitlines()[-1]), "model": model}


def bind_mounts(service: dict) -> dict[str, str]:
    """Container path -> host path of a service's volumes."""
    # The short syntax `src:dst` cannot be split safely when src is `${VAR:-default}`.
    assert all(isinstance(v, dict) for v in service.get("volumes", [])), "volumes: use the long syntax"
    return {v["target"]: v["source"] for v in service.get("volumes", [])}


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment", {})
    return dict(e.partition("=")[::2] for e in env) if isinstance(env, list) else {k: str(v) for k, v in env.items()}


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1]) for ln in lines]


def workdir(service: dict) -> str:
    """The service's working directory: its own, or (a service built from the Dockerfile) the last WORKDIR."""
    if "working_dir" in service:
        return service["working_dir"]
    assert service["build"] in (".", {"context": "."}), "the workflow image is built from the repository root"
    return [arg for inst, arg in dockerfile_instructions() if inst == "WORKDIR"][-1]


def largest_adapter_rank(config: dict) -> int:
    """The largest LoRA rank a run can produce: the personas', then each generation's children bred from
    parents of the largest rank so far ('sum' grows every generation)."""
    from evoswarm.config import persona_training
    from evoswarm.evolve.crossover import child_rank

    evo = config["evolution"]
    rank = max(persona_training(config, p)["r"] for p in config["personas"])
    for _ in range(config["generations"]):
        rank = max(rank, child_rank(evo["crossover"], [rank] * evo["parents"], evo["child_rank"]))
    return rank


def test_compose_file_follows_the_compose_specification(compose):
    schema = json.loads((REPO / "tests/support/compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(compose)]
    assert not errors, errors
    # The schema is strict, so passing it means something: a misspelt service key fails.
    typo = copy.deepcopy(compose)
    typo["services"][SERVER]["healthchek"] = typo["services"][SERVER].pop("healthcheck")
    assert not validator.is_valid(typo)


@pytest.mark.slow  # fetches the Compose v2 binary when missing
def test_docker_compose_config_loads_the_file(compose, tmp_path):
    found = subprocess.run([str(REPO / "tests/support/ensure_compose.sh")], capture_output=True, text=True, timeout=600)
    assert found.returncode == 0, f"no Docker Compose binary: {found.stderr}"
    env = {**os.environ, "HF_CACHE": str(tmp_path / "hf")}
    run = subprocess.run(
        [found.stdout.split()[-1], "--file", str(COMPOSE), "config", "--format", "json"],
        capture_output=True, text=True, timeout=120, cwd=REPO, env=env,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    model = json.loads(run.stdout)
    assert set(model["services"]) == {SERVER, WORKFLOW}
    # Compose's own reading of the mounts agrees with the short syntax the other tests parse.
    for name in (SERVER, WORKFLOW):
        normalised = {v["target"]: v["source"] for v in model["services"][name]["volumes"]}
        assert set(normalised) == set(bind_mounts(compose["services"][name]))
        assert normalised["/root/.cache/huggingface"] == str(tmp_path / "hf")
    # Compose's reading of any published port: bound to the loopback interface only.
    for name, service in model["services"].items():
        ports = service.get("ports", [])
        assert all(p.get("host_ip") in ("127.0.0.1", "::1") for p in ports), f"{name} publishes {ports}"
    assert model["services"][WORKFLOW]["depends_on"][SERVER]["condition"] == "service_healthy"


@pytest.mark.slow  # `served`: the vLLM-for-CPU venv
@pytest.mark.parametrize("config_path", QWEN_CONFIGS)
def test_server_takes_every_adapter_the_qwen_configs_breed(served, config_path):
    config = load(config_path)
    assert served["enable_lora"]
    rank = largest_adapter_rank(config)
    assert served["max_lora_rank"] >= rank, f"{config_path} breeds rank-{rank} adapters"
    # One debate round sends every agent's prompts: all of them fit in one batch.
    assert served["max_loras"] >= config["population"]
    # Named, and never lm_head: scoring under vLLM's lm_head LoRA wrapper killed the engine (tests on CPU).
    targets = served["lora_target_modules"] or []
    assert set(config["training"]["target_modules"]) <= set(targets) and "lm_head" not in targets


def test_server_loads_adapters_at_run_time(compose):
    # vLLM reads the variable as true when it is '1' or 'true' in any case (vllm/envs.py).
    env = environment(compose["services"][SERVER])
    assert env.get("VLLM_ALLOW_RUNTIME_LORA_UPDATING", "").strip().lower() in ("1", "true")


@pytest.mark.slow  # `served`: the vLLM-for-CPU venv
def test_server_config_talks_to_the_vllm_service(compose, served, server_config):
    url = urlparse(server_config["debate"]["openai"]["base_url"])
    assert server_config["debate"]["backend"] == "openai"
    assert (url.scheme, url.hostname, url.port, url.path) == ("http", SERVER, served["port"], "/v1")
    # Requests without an adapter go to the base under the name the server gives it.
    assert (served["served_model_name"] or [served["model"]])[0] == server_config["base_model"]
    # The same snapshot of it as the workflow's base manifest, whose adapters the server is given.
    assert served["revision"] == server_config["base"]["revision"]
    command = compose["services"][WORKFLOW]["command"]
    assert command[command.index("--configfile") + 1] == SERVER_CONFIG


def test_adapter_and_base_paths_resolve_alike_in_both_containers(compose, server_config):
    server, workflow = compose["services"][SERVER], compose["services"][WORKFLOW]
    # The workflow names each adapter to the server by its absolute path inside the workflow container.
    results = PurePosixPath(workdir(workflow)) / server_config["results"]
    server_mounts, workflow_mounts = bind_mounts(server), bind_mounts(workflow)
    assert str(results) in workflow_mounts, f"{results} is not mounted in the workflow container"
    assert server_mounts.get(str(results)) == workflow_mounts[str(results)]
    # The base's manifest names a snapshot folder of the Hugging Face cache: the same cache, same path.
    hf_home = environment(server)["HF_HOME"]
    assert environment(workflow)["HF_HOME"] == hf_home
    assert hf_home in server_mounts and server_mounts[hf_home] == workflow_mounts.get(hf_home)


def test_server_is_reachable_only_from_the_compose_network(compose):
    for name, service in compose["services"].items():
        assert service.get("network_mode") != "host", name
        for port in service.get("ports", []):
            if isinstance(port, dict):
                host_ip = port.get("host_ip", "")
            else:  # [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]; without HOST_IP it binds every interface
                parts = str(port).rsplit(":", 2)
                host_ip = parts[0].strip("[]") if len(parts) == 3 else ""
            assert host_ip in ("127.0.0.1", "::1"), f"{name} publishes {port!r} beyond the loopback interface"
    assert compose["services"][SERVER]["healthcheck"]["test"]
    assert compose["services"][WORKFLOW]["depends_on"][SERVER]["condition"] == "service_healthy"


def test_server_image_is_pinned_and_both_services_get_the_gpu(compose):
    image = compose["services"][SERVER]["image"]
    name, _, tag = image.rpartition(":")
    assert name == "vllm/vllm-openai" and re.fullmatch(r"v\d+\.\d+\.\d+", tag), image
    for name in (SERVER, WORKFLOW):  # the workflow trains and evaluates on the GPU too
        devices = compose["services"][name]["deploy"]["resources"]["reservations"]["devices"]
        assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices), name


def test_dockerfile_inputs_exist_and_reach_the_build():
    instructions = dockerfile_instructions()
    base = [arg for inst, arg in instructions if inst == "FROM"][0]
    assert ":" in base and not base.endswith(":latest"), f"unpinned base image {base}"
    ignored = [ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines() if ln.strip() and ln[0] != "#"]
    for inst, arg in instructions:
        if inst != "COPY":
            continue
        for source in arg.split()[:-1]:
            path = source.rstrip("/")
            if path == ".":
                continue
            assert (REPO / path).exists(), f"Dockerfile copies {source}, which is not in the repository"
            hits = [p for p in ignored if fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path, p.removeprefix("**/"))]
            assert not hits, f".dockerignore {hits} keeps {source} out of the build"
    # tomllib is Python 3.11+, the project supports 3.10: the section's keys, read directly.
    section = re.search(
        r"^\[project\.optional-dependencies\]\n(.*?)^\[", (REPO / "pyproject.toml").read_text(), re.S | re.M
    )
    extras = set(re.findall(r"^([\w-]+)\s*=", section.group(1), re.M))
    for run in (arg for inst, arg in instructions if inst == "RUN" and "pip install" in arg):
        for wanted in re.findall(r"\.\[([\w,-]+)\]", run):
            assert set(wanted.split(",")) <= set(extras), f"Dockerfile installs unknown extras [{wanted}]"
