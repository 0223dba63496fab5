"""Evaluation targets: lm-evaluation-harness for single models (base, base + one adapter), the debate
evaluator for teams, and base-model self-consistency; every result in lm-eval's JSON shape.

Each result carries `evoswarm.per_item` (id, skill, correct) so the report can break accuracy down
by skill and bootstrap intervals from the very items that were scored.
"""

from __future__ import annotations

import json
import math
import random
from collections import Counter
from pathlib import Path

import yaml

from evoswarm.io import InputError
from evoswarm.prompts import ANSWER_PREFIX, ANSWER_SUFFIX, chat, render, turn_prompt

TASK_YAML = Path(__file__).resolve().parent / "lm_eval_task" / "evoswarm_mc.yaml"
TASK = "evoswarm_mc"


def lm_eval_docs(items: list[dict], tokenizer, system: str) -> list[dict]:
    """Test items as lm-eval docs: the chat-formatted prompt up to '{"answer": "', continuations, gold index."""
    docs = []
    for i, it in enumerate(items, 1):
        if not it.get("choices"):
            raise InputError(f"test item {it.get('id', i)}: lm-eval's multiple-choice task needs 'choices'")
        prompt = render(tokenizer, chat(system, turn_prompt(it["question"], it["choices"])), ANSWER_PREFIX)
        docs.append(
            {
                "id": it["id"],
                "skill": it.get("skill", ""),
                "prompt": prompt,
                "continuations": [c + ANSWER_SUFFIX for c in it["choices"]],
                "gold": it["choices"].index(it["answer"]),
            }
        )
    return docs


def task_config(data_file: str) -> dict:
    """The shipped task YAML with the prepared data file filled in."""
    cfg = yaml.safe_load(TASK_YAML.read_text())
    cfg["dataset_kwargs"]["data_files"]["test"] = str(data_file)
    return cfg


def run_lm_eval(
    model_path: str, adapter: str | None, docs: list[dict], work: Path, config: dict, seed: int, batch_size: int
) -> dict:
    """lm_eval.simple_evaluate with the `hf` model (and `peft=` for an adapter) on the prepared docs."""
    import lm_eval

    from evoswarm.base_model import pick_device, pick_dtype

    data_file = work / "docs.jsonl"
    data_file.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    device = pick_device(config["base"]["device"])
    model_args = {
        "pretrained": model_path,
        "dtype": str(pick_dtype(config["base"]["dtype"], device)).split(".")[-1],
        "device": device,
        "trust_remote_code": config["base"]["trust_remote_code"],
    }
    if adapter:
        model_args["peft"] = adapter
    res = lm_eval.simple_evaluate(
        model="hf",
        model_args=model_args,
        tasks=[task_config(str(data_file))],
        batch_size=batch_size,
        log_samples=True,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        bootstrap_iters=0,
        cache_requests=False,
    )
    samples = res.pop("samples")[TASK]
    by_id = {d["id"]: d for d in docs}
    per_item = sorted(
        ({"id": s["doc"]["id"], "skill": by_id[s["doc"]["id"]]["skill"], "correct": bool(s["acc"])} for s in samples),
        key=lambda r: r["id"],
    )
    from lm_eval.utils import handle_non_serializable

    out = json.loads(json.dumps(res, default=handle_non_serializable))
    out["evoswarm"] = {"evaluator": "lm-eval", "per_item": per_item}
    return out


def result_json(per_item: list[dict], evaluator: str, extra: dict | None = None) -> dict:
    """A result in lm-eval's shape (results -> task -> 'acc,none', 'acc_stderr,none') from per-item scores."""
    n = len(per_item)
    acc = sum(r["correct"] for r in per_item) / n if n else 0.0
    stderr = math.sqrt(acc * (1 - acc) / (n - 1)) if n > 1 else 0.0
    return {
        "results": {TASK: {"alias": TASK, "acc,none": acc, "acc_stderr,none": stderr}},
        "n-samples": {TASK: {"original": n, "effective": n}},
        "evoswarm": {"evaluator": evaluator, "per_item": per_item, **(extra or {})},
    }


def accuracy(result: dict) -> float:
    return result["results"][TASK]["acc,none"]


def majority(answers: list[str]) -> str:
    """Most frequent answer; ties go to the one seen first."""
    counts = Counter(answers)
    return max(answers, key=lambda a: (counts[a], -answers.index(a))) if answers else ""


def self_consistency_loglik(scores: list[list[float]], items: list[dict], k: int, seed: int) -> list[str]:
    """k answers sampled from each item's softmax over its choices' log-likelihoods, then majority."""
    from evoswarm.scoring import softmax

    rng = random.Random(seed)
    out = []
    for sc, it in zip(scores, items):
        probs = softmax(sc)
        draws = rng.choices(it["choices"], weights=probs, k=k)
        out.append(majority(draws))
    return out


def bootstrap_ci(correct: list[bool], iters: int, seed: int) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean."""
    if not correct:
        return (0.0, 0.0)
    rng = random.Random(seed)
    n = len(correct)
    means = sorted(sum(rng.choices(correct, k=n)) / n for _ in range(iters))
    return means[int(0.025 * (iters - 1))], means[int(0.975 * (iters - 1))]
