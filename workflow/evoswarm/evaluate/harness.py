"""Evaluation targets: lm-evaluation-harness for single models (base, base + one adapter), the debate
evaluator for teams, and base-model self-consistency; every result in lm-eval's JSON shape.

Each result carries `evoswarm.per_item` (id, skill, correct: the item's score, a bool, or in [0, 1] for the
free-text scorers) so the report can break accuracy down
by skill and bootstrap intervals from the very items that were scored, and `evoswarm.budget` (model
calls, generated tokens, scored continuations) so targets are compared at what they cost.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path

import yaml

from evoswarm.io import InputError
from evoswarm.protocol.chat import chat, render
from evoswarm.protocol.parsing import match_choice, parse_turn
from evoswarm.protocol.prompts import ANSWER_PREFIX, ANSWER_SUFFIX, turn_prompt
from evoswarm.protocol.scoring import FREE_TEXT, SCORERS

TASK_DIR = Path(__file__).resolve().parent / "lm_eval_task"
TASK = "evoswarm_mc"  # multiple choice (choice, exact, numeric scorers): metric acc
GEN_TASK = "evoswarm_gen"  # free text (rouge_l, f1): generate_until, metric the scorer's name


def task_metric(scorer: str) -> tuple[str, str]:
    """(lm-eval task, metric) under which a scorer's results are recorded."""
    return (GEN_TASK, scorer) if scorer in FREE_TEXT else (TASK, "acc")


def lm_eval_docs(items: list[dict], tokenizer, system: str, scorer: str = "choice") -> list[dict]:
    """Test items as lm-eval docs: the chat-formatted prompt up to '{"answer": "', then (multiple choice)
    continuations and the gold index, or (free-text scorers) the gold answer text."""
    docs = []
    for i, it in enumerate(items, 1):
        prompt = render(tokenizer, chat(system, turn_prompt(it["question"], it.get("choices"))), ANSWER_PREFIX)
        if scorer in FREE_TEXT:
            docs.append({"id": it["id"], "skill": it.get("skill", ""), "prompt": prompt, "gold": it["answer"]})
            continue
        if not it.get("choices"):
            raise InputError(f"test item {it.get('id', i)}: lm-eval's multiple-choice task needs 'choices'")
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


def _free_text_result(doc: dict, resps: list[str], scorer: str) -> dict[str, float]:
    """lm-eval `process_results` of the free-text task: the generated answer's score against the gold."""
    return {scorer: SCORERS[scorer](resps[0], doc["gold"])}


def task_config(data_file: str, scorer: str = "choice", max_gen_toks: int = 48) -> dict:
    """The shipped task YAML of the scorer's task with the prepared data file filled in; the free-text task
    also gets its metric (the scorer, mean over items) and its generation length."""
    task, metric = task_metric(scorer)
    cfg = yaml.safe_load((TASK_DIR / f"{task}.yaml").read_text())
    cfg["dataset_kwargs"]["data_files"]["test"] = str(data_file)
    if scorer in FREE_TEXT:
        cfg["process_results"] = functools.partial(_free_text_result, scorer=scorer)
        cfg["metric_list"] = [{"metric": metric, "aggregation": "mean", "higher_is_better": True}]
        cfg["generation_kwargs"]["max_gen_toks"] = max_gen_toks
    return cfg


def hf_model_args(model_path: str, adapter: str | None, config: dict) -> dict:
    """lm-eval's `hf` model arguments for the base (and `peft=` an adapter), as the config places the model."""
    from evoswarm.model.base import pick_device, pick_dtype

    device = pick_device(config["base"]["device"])
    args = {
        "pretrained": model_path,
        "dtype": str(pick_dtype(config["base"]["dtype"], device)).split(".")[-1],
        "device": device,
        "trust_remote_code": config["base"]["trust_remote_code"],
    }
    if adapter:
        args["peft"] = adapter
    return args


def load_lm_eval_model(model_path: str, adapters: dict[str, str], config: dict, batch_size: int):
    """lm-eval's HFLM over the base loaded once, every adapter (name -> folder) loaded into one PeftModel;
    `use_adapter` picks the one scored next. Built as lm-eval's `hf` builds the base + `peft=` model from
    model_args (same dtype, device map, tokenizer, embedding resize), so each adapter scores the same."""
    import transformers
    from lm_eval.models.huggingface import HFLM
    from lm_eval.models.utils_hf import get_dtype
    from peft import PeftModel

    args = hf_model_args(model_path, None, config)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        model_path,
        revision="main",
        dtype=get_dtype(args["dtype"]),
        trust_remote_code=args["trust_remote_code"],
        device_map={"": args["device"]},
    )
    if adapters:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            model_path, revision="main", trust_remote_code=args["trust_remote_code"], use_fast=True
        )
        text_config = getattr(model.config, "text_config", None)  # multimodal configs keep it there
        vocab_size = getattr(text_config, "vocab_size", None) or model.config.vocab_size
        if vocab_size != len(tokenizer):  # what lm-eval does before loading a PEFT adapter
            model.resize_token_embeddings(len(tokenizer))
        (first, path), *rest = adapters.items()
        model = PeftModel.from_pretrained(model, path, adapter_name=first)
        for name, path in rest:
            model.load_adapter(path, adapter_name=name)
    return HFLM(
        pretrained=model, tokenizer=model_path, batch_size=batch_size, trust_remote_code=args["trust_remote_code"]
    )


def use_adapter(lm, name: str) -> None:
    """Score with adapter `name` of a model from load_lm_eval_model."""
    lm.model.set_adapter(name)


def run_lm_eval(
    model_path: str,
    adapter: str | None,
    docs: list[dict],
    work: Path,
    config: dict,
    seed: int,
    batch_size: int,
    lm=None,
) -> dict:
    """lm_eval.simple_evaluate on the prepared docs: with `lm` (from load_lm_eval_model, `adapter` already
    in use) the model loaded once; without, the `hf` model built from model_args (`peft=` the adapter).
    Either way the result records the `hf` model_args that describe what was scored."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    data_file = work / "docs.jsonl"
    data_file.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    model_args = hf_model_args(model_path, adapter, config)
    scorer = config["tasks"]["scorer"]
    task, metric = task_metric(scorer)
    # The task is a dict config, so the loaded-once path skips indexing lm-eval's thousands of shipped task
    # files (seconds a call); the metadata is what lm-eval attaches from model_args.
    tasks = TaskManager(include_defaults=False, metadata=model_args) if lm is not None else None
    res = lm_eval.simple_evaluate(
        model=lm if lm is not None else "hf",
        model_args=None if lm is not None else model_args,
        task_manager=tasks,
        tasks=[task_config(str(data_file), scorer, config["debate"]["max_new_tokens"])],
        batch_size=batch_size,
        log_samples=True,
        random_seed=seed,
        numpy_random_seed=seed,
        torch_random_seed=seed,
        bootstrap_iters=0,
        cache_requests=False,
    )
    samples = res.pop("samples")[task]
    by_id = {d["id"]: d for d in docs}
    free_text = scorer in FREE_TEXT
    per_item = sorted(
        (
            {
                "id": s["doc"]["id"],
                "skill": by_id[s["doc"]["id"]]["skill"],
                "correct": s[metric] if free_text else bool(s[metric]),
                "answer": s["filtered_resps"][0] if free_text else chosen(s["filtered_resps"], by_id[s["doc"]["id"]]),
            }
            for s in samples
        ),
        key=lambda r: r["id"],
    )
    from lm_eval.utils import handle_non_serializable

    out = json.loads(json.dumps(res, default=handle_non_serializable))
    out.setdefault("config", {}).update(model="hf", model_args=model_args)
    if free_text:  # one generation per item, its answer's tokens counted
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=model_args["trust_remote_code"])
        generated = sum(len(tokenizer(r["answer"], add_special_tokens=False)["input_ids"]) for r in per_item)
        spent = budget(len(docs), generated, 0)
    else:  # one forward pass per item; lm-eval scores every choice's continuation and generates nothing
        spent = budget(len(docs), 0, sum(len(d["continuations"]) for d in docs))
    out["evoswarm"] = {"evaluator": "lm-eval", "per_item": per_item, "budget": spent}
    return out


def chosen(choice_resps: list, doc: dict) -> str:
    """The choice lm-eval's acc counts as the answer: the highest log-likelihood, the first on a tie (argmax)."""
    lls = [r[0] for r in choice_resps]
    return doc["continuations"][max(range(len(lls)), key=lls.__getitem__)].removesuffix(ANSWER_SUFFIX)


def result_json(per_item: list[dict], evaluator: str, extra: dict | None = None, scorer: str = "choice") -> dict:
    """A result in lm-eval's shape (results -> task -> '<metric>,none', '<metric>_stderr,none'; task and metric
    by task_metric) from per-item scores: their mean and its standard error."""
    task, metric = task_metric(scorer)
    n = len(per_item)
    mean = sum(r["correct"] for r in per_item) / n if n else 0.0
    # The sample variance of the items' scores (for right/wrong items p(1 - p) n / (n - 1)).
    var = sum((float(r["correct"]) - mean) ** 2 for r in per_item) / (n - 1) if n > 1 else 0.0
    return {
        "results": {task: {"alias": task, f"{metric},none": mean, f"{metric}_stderr,none": math.sqrt(var / n)}},
        "n-samples": {task: {"original": n, "effective": n}},
        "evoswarm": {"evaluator": evaluator, "per_item": per_item, **(extra or {})},
    }


def accuracy(result: dict) -> float:
    """A result's mean score over its items (accuracy, or the free-text scorer's mean)."""
    scores = next(iter(result["results"].values()))
    metric = next((m for m in FREE_TEXT if f"{m},none" in scores), "acc")
    return scores[f"{metric},none"]


def n_items(result: dict) -> int:
    return next(iter(result["n-samples"].values()))["effective"]


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

    def __init__(self, backend, tokenizer, on_call=None):
        self.backend = backend
        self.tokenizer = tokenizer
        self.generated_tokens = 0
        self.scored_continuations = 0
        # Per call: the prompts' hashes (debate.prompt_hash) and the tokens generated and continuations
        # scored, so the cost of some of the turns (a debate's round 1) can be told apart afterwards.
        self.ledger: list[tuple[frozenset[str], int, int]] = []
        self.on_call = on_call  # called with the number of requests of each call (progress)

    def add_adapter(self, name: str, path: str) -> None:
        self.backend.add_adapter(name, path)

    def generate(self, requests: list) -> list[str]:
        before = getattr(self.backend, "generated_tokens", None)
        texts = self.backend.generate(requests)
        if before is not None:
            new_tokens = self.backend.generated_tokens - before
        else:
            new_tokens = 0
            for r, t in zip(requests, texts):
                new = t[len(r.prefix) :] if t.startswith(r.prefix) else t
                new_tokens += len(self.tokenizer(new, add_special_tokens=False)["input_ids"])
        self.generated_tokens += new_tokens
        self._record(requests, new_tokens, 0)
        return texts

    def score(self, requests: list) -> list[list[float]]:
        continuations = sum(len(r.continuations) for r in requests)
        self.scored_continuations += continuations
        scores = self.backend.score(requests)
        self._record(requests, 0, continuations)
        return scores

    def _record(self, requests: list, generated: int, scored: int) -> None:
        from evoswarm.debate.loop import prompt_hash

        self.ledger.append((frozenset(prompt_hash(r.messages) for r in requests), generated, scored))
        if self.on_call:
            self.on_call(len(requests))

    def budget(self, model_calls: int) -> dict:
        return budget(model_calls, self.generated_tokens, self.scored_continuations)

    def spent_on(self, prompts: set[str]) -> tuple[int, int]:
        """(generated tokens, scored continuations) of the calls whose every prompt hash is in `prompts`."""
        calls = [(g, s) for hashes, g, s in self.ledger if hashes <= prompts]
        return sum(g for g, _ in calls), sum(s for _, s in calls)

    def __getattr__(self, name):  # e.g. `truncated`
        if name == "backend":  # not set yet (copying): no recursion
            raise AttributeError(name)
        return getattr(self.backend, name)


def seeded_majority(answers: list[str], seed: int, item_id: str, scorer: str = "choice") -> tuple[str, dict[str, int]]:
    """Most frequent non-empty answer (empty ones abstain): the debate's vote with every sample weighing 1,
    so ties fall by the same seeded rule and answers group as there (scoring.weighted_vote, vote_key).
    Returns (winner or '', counts)."""
    from evoswarm.protocol.scoring import vote_key, weighted_vote

    winner, scores = weighted_vote([(a, 1.0) for a in answers], seed, item_id, vote_key(scorer))
    return winner, {k: round(v) for k, v in scores.items()}


def sample_answer(text: str, choices: list[str] | None) -> str:
    """One sampled turn's answer, as the debate reads it: parsed leniently, mapped onto the choices
    (kept as written when it names none); '' when no answer could be read (an abstention)."""
    t = parse_turn(text)
    if not t.ok:
        return ""
    return (match_choice(t.answer, choices) or t.answer) if choices else t.answer
