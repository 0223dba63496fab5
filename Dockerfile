# evoswarm on a CUDA GPU: CUDA torch from the base image, then the package with its cuda extra.
# Build: docker build -t evoswarm .   Run: docker run --gpus all -v $PWD/results:/app/results evoswarm
# With a vLLM server for the debates: docker compose up (docker-compose.yml, configs/qwen3-4b-vllm-server.yaml).
FROM pytorch/pytorch:2.8.0-cuda12.8-cudnn9-runtime
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY workflow/ workflow/
RUN pip install --no-cache-dir -e '.[cuda]'
COPY . .
ENV HF_HUB_OFFLINE=1
CMD ["snakemake", "--cores", "all", "--resources", "gpu=1"]
