"""Every registry chosen by name in the config against the schema: a new choice is one entry in its
registry, and the schema must list exactly those names (a name missing from either is a config that
validates and then fails in a job, or an entry no config can reach)."""

import importlib
import subprocess
import sys

import pytest
import yaml
from evoswarm.config import CHILD_RANK, SCHEMA_PATH

# (schema key path, "module:REGISTRY"): the enum at that key is the registry's names. Pipeline order.
REGISTRIES = [
    ("tasks.scorer", "evoswarm.protocol.scoring:SCORERS"),
    ("debate.backend", "evoswarm.backends:BACKENDS"),
    ("debate.aggregator", "evoswarm.debate.aggregate:AGGREGATORS"),
    ("fitness.cooperation", "evoswarm.evolve.cooperation:COOPERATION"),
    ("fitness.cooperation_mode", "evoswarm.evolve.cooperation:COOPERATION_MODES"),
    ("fitness.novelty", "evoswarm.evolve.fitness:NOVELTY"),
    ("fitness.normalise", "evoswarm.evolve.fitness:NORMALISERS"),
    ("evolution.survival", "evoswarm.evolve.selection:SURVIVAL"),
    ("evolution.selection", "evoswarm.evolve.selection:SELECTION"),
    ("evolution.blend.mode", "evoswarm.evolve.selection:BLEND"),
    ("evolution.crossover", "evoswarm.evolve.crossover:CROSSOVER"),
    ("evolution.lamarck.step", "evoswarm.evolve.lamarck:LAMARCK"),
]


def schema_at(path: str) -> dict:
    node = yaml.safe_load(SCHEMA_PATH.read_text())
    for key in path.split("."):
        node = node["properties"][key]
    return node


def registry(spec: str):
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("path, spec", REGISTRIES)
def test_schema_choices_are_the_registry(path, spec):
    assert sorted(schema_at(path)["enum"]) == sorted(registry(spec))


def test_each_mutation_is_turned_on_by_its_settings():
    """Mutation has no choice key: every operator runs, each turned on by its `<name>_*` settings."""
    from evoswarm.evolve.mutation import MUTATION

    settings = schema_at("evolution.mutation")["properties"]
    assert sorted({key.split("_")[0] for key in settings}) == sorted(MUTATION)


def test_child_rank_needs_are_crossovers_and_choices():
    choices = schema_at("evolution.child_rank")["anyOf"][0]["enum"]
    assert set(CHILD_RANK) <= set(registry("evoswarm.evolve.crossover:CROSSOVER"))
    assert {need for need, _ in CHILD_RANK.values()} <= set(choices)


@pytest.mark.parametrize("spec", ["evoswarm.backends:BACKENDS", "evoswarm.model.base:SOURCES"])
def test_declared_parameters_are_config_keys(spec):
    """What an entry says it reads is in the schema ('seed' is the replicate's, which stage_config adds)."""
    for name, entry in registry(spec).items():
        assert entry.name == name
        for key in entry.parameters:
            if key != "seed":
                schema_at(key)


def test_the_default_base_is_a_source():
    from evoswarm.model.base import SOURCES

    assert schema_at("base_model")["default"] in SOURCES


def test_the_backend_registry_imports_no_backend():
    """A backend's module is imported only when it is chosen: vllm is an optional extra."""
    code = (
        "import sys, evoswarm.backends; "
        "print(sorted(m for m in sys.modules if m.startswith(('vllm', 'evoswarm.backends.', 'transformers'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_a_manifest_of_no_known_source_is_refused(tmp_path):
    from evoswarm.io import InputError
    from evoswarm.model.base import read_manifest

    (tmp_path / "manifest.json").write_text('{"source": "x", "source_type": "ftp", "fingerprint": "0"}')
    with pytest.raises(InputError, match=r"unknown source_type 'ftp' \(embedded, folder, hub\); rerun build_base"):
        read_manifest(tmp_path)
