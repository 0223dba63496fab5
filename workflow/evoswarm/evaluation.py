"""Evaluation targets: lm-evaluation-harness for single models (base, base + one adapter), the debate
evaluator for teams, and base-model self-consistency; every result in lm-eval's JSON shape.

Each result carries `evoswarm.per_item` (id, skill, correct) so the report can break accuracy down
by skill and bootstrap intervals from the very items that were scored, and `evoswarm.budget` (model
calls, generated tokens, scored continuations) so targets are compared at what they cost.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from evoswarm.io import InputError
from evoswarm.parsing import match_choice, parse_turn
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
    # One forward pass per item; lm-eval scores every choice's continuation and generates nothing.
    spent = budget(len(docs), 0, sum(len(d["continuations"]) for d in docs))
    out["evoswarm"] = {"evaluator": "lm-eval", "per_item": per_item, "budget": spent}
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


def budget(model_calls: int, generated_tokens: int, scored_continuations: int) -> dict:
    """What a target spent on the test items, recorded as `evoswarm.budget` so targets compare at equal cost."""
    return {
        "model_calls": int(model_calls),
        "generated_tokens": int(generated_tokens),
        "scored_continuations": int(scored_continuations),
    }


class CountingBackend:
    """A backend wrapper that counts the tokens generated (the backend's own count where it keeps one,
    else the returned text after any forced prefix, by the base tokenizer) and the continuations
    scored; everything else goes to the wrapped backend."""

    def __init__(self, backend, tokenizer):
        self.backend = backend
        self.tokenizer = tokenizer
        self.generated_tokens = 0
        self.scored_continuations = 0

    def add_adapter(self, name: str, path: str) -> None:
        self.backend.add_adapter(name, path)

    def generate(self, requests: list) -> list[str]:
        before = getattr(self.backend, "generated_tokens", None)
        texts = self.backend.generate(requests)
        if before is not None:
            self.generated_tokens += self.backend.generated_tokens - before
            return texts
        for r, t in zip(requests, texts):
            new = t[len(r.prefix) :] if t.startswith(r.prefix) else t
            self.generated_tokens += len(self.tokenizer(new, add_special_tokens=False)["input_ids"])
        return texts

    def score(self, requests: list) -> list[list[float]]:
        self.scored_continuations += sum(len(r.continuations) for r in requests)
        return self.backend.score(requests)

    def budget(self, model_calls: int) -> dict:
        return budget(model_calls, self.generated_tokens, self.scored_continuations)

    def __getattr__(self, name):  # e.g. `truncated`
        if name == "backend":  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.backend, name)


def seeded_majority(answers: list[str], seed: int, item_id: str) -> tuple[str, dict[str, int]]:
    """Most frequent non-empty answer (empty ones abstain): the debate's vote with every sample weighing 1,
    so ties fall by the same seeded rule (scoring.weighted_vote). Returns (winner or '', counts)."""
    from evoswarm.scoring import weighted_vote

    winner, scores = weighted_vote([(a, 1.0) for a in answers], seed, item_id)
    return winner, {k: round(v) for k, v in scores.items()}


def sample_answer(text: str, choices: list[str] | None) -> str:
    """One sampled turn's answer, as the debate reads it: parsed leniently, mapped onto the choices
    (kept as written when it names none); '' when no answer could be read (an abstention)."""
    t = parse_turn(text)
    if not t.ok:
        return ""
    return (match_choice(t.answer, choices) or t.answer) if choices else t.answer
