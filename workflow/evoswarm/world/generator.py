"""The embedded task world: a multiple-choice family with three skills, in English and Japanese.

Everything here is deterministic from a seed. `python -m evoswarm.world.generator --out data --seed 0`
regenerates the committed files under data/:

- tasks/{train,dev,test}.jsonl  questions with choices, answer (a choice's text) and skill:
                                arithmetic (a + b), sequence (next term), category (which word is a <group>)
- personas/<persona>.jsonl      one SFT chat per line, the persona's skill only, debate-turn answers
- corpus/corpus.txt             general text the base model pretrains on (world knowledge as prose)
- corpus/format.jsonl           chats teaching the answer format: a fourth, trivial skill (echo), and a
                                few plain questions of each skill
- tasks/freetext/{train,dev,test}.jsonl, personas/freetext/<persona>.jsonl
                                the free-text family (configs/freetext.yaml; scorer rouge_l or f1): English
                                questions without choices whose short answers are words (FREETEXT_SKILLS);
                                drawn from a random stream of its own, so the files above do not change

The base learns the world's knowledge as prose, the answer format, and a little of each skill; each
specialist is trained on ten times more questions of its own skill, which leaves it clear room.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from pathlib import Path

from evoswarm.io import InputError
from evoswarm.protocol.prompts import PeerAnswer, turn_prompt

SKILLS = ("arithmetic", "sequence", "category")

CATEGORIES = {
    "fruit": (
        ["apple", "pear", "grape", "peach", "lemon", "melon", "cherry", "plum"],
        ["りんご", "なし", "ぶどう", "もも", "レモン", "メロン", "さくらんぼ", "すもも"],
    ),
    "animal": (
        ["dog", "cat", "horse", "tiger", "rabbit", "bear", "mouse", "sheep"],
        ["いぬ", "ねこ", "うま", "とら", "うさぎ", "くま", "ねずみ", "ひつじ"],
    ),
    "tool": (
        ["hammer", "saw", "drill", "wrench", "shovel", "knife", "ruler", "brush"],
        ["かなづち", "のこぎり", "ドリル", "レンチ", "シャベル", "ナイフ", "じょうぎ", "ブラシ"],
    ),
    "color": (
        ["red", "blue", "green", "yellow", "white", "black", "purple", "orange"],
        ["あか", "あお", "みどり", "きいろ", "しろ", "くろ", "むらさき", "だいだい"],
    ),
    "vehicle": (
        ["car", "bus", "train", "boat", "plane", "bike", "truck", "ship"],
        ["くるま", "バス", "でんしゃ", "ボート", "ひこうき", "じてんしゃ", "トラック", "ふね"],
    ),
}
CATEGORY_NAMES_JA = {
    "fruit": "くだもの",
    "animal": "どうぶつ",
    "tool": "どうぐ",
    "color": "いろ",
    "vehicle": "のりもの",
}

TEMPLATES = {
    "arithmetic": {
        "en": ["What is {a} plus {b}?", "Add {a} and {b}."],
        "ja": ["{a} たす {b} は？", "{a} と {b} をたすと？"],
    },
    "sequence": {
        # The step is named, as the corpus's counting lines name it: inferring it from the terms stayed
        # near chance on held-out progressions for every persona (measured), naming it keeps a learnable skill.
        "en": ["Counting by {step}: {seq}, ?", "Add {step} each time: {seq}, ?"],
        "ja": ["{step} ずつ: {seq}, ?", "{step} ずつ ふえる: {seq}, ?"],
    },
    "category": {
        "en": ["Which one is a {group}?", "Pick the {group}."],
        "ja": ["{group} はどれ？", "{group} をえらんで。"],
    },
}

# The seed's three personas, each specialising in one skill and speaking in its own style.
PERSONAS = {
    "critic": {
        "skill": "arithmetic",
        "system": "You are a rigorous critic. Check every step and reject errors.",
    },
    "implementer": {
        "skill": "sequence",
        "system": "You are a practical implementer. Find the rule and apply it.",
    },
    "ideator": {
        "skill": "category",
        "system": "You are a divergent ideator. Look for the unusual connection.",
    },
}

# Items per skill in each split. Splits are cut by content (see `content_key`), never by sampling ids.
SPLIT_SIZES = {"test": 80, "dev": 30, "train": 300}

# The task space: two-digit + one-digit sums and progressions with a two-digit start. The base's corpus states
# sums and progressions only outside it (first operand / start >= 60 / 80) and single-digit facts, so no
# task problem is ever stated anywhere; held-out items test whether a skill generalises, not memory.
ARITH_A, ARITH_B = range(10, 60), range(1, 10)
SEQ_START, SEQ_STEP = range(10, 80), range(2, 7)


def _arithmetic(key: tuple, rng: random.Random, lang: str) -> tuple[str, str, list[str], dict]:
    _, b, a = key
    ans = a + b
    pool = [ans - 2, ans - 1, ans + 1, ans + 2, ans - 10, ans + 10]
    wrong = rng.sample(pool, 3)
    q = rng.choice(TEMPLATES["arithmetic"][lang]).format(a=a, b=b)
    return q, str(ans), [str(v) for v in wrong], {"a": a, "b": b}


def _sequence(key: tuple, rng: random.Random, lang: str) -> tuple[str, str, list[str], dict]:
    _, start, step = key
    seq = [start + i * step for i in range(3)]
    ans = start + 3 * step
    # Pattern slips (repeat the last term, skip one) and near misses (off by one or by ten).
    pool = sorted({seq[-1], ans + step, ans - 1, ans + 1, ans + 10} - {ans})
    wrong = rng.sample(pool, 3)
    q = rng.choice(TEMPLATES["sequence"][lang]).format(step=step, seq=", ".join(map(str, seq)))
    return q, str(ans), [str(v) for v in wrong], {"seq": seq, "step": step}


def _category(key: tuple, rng: random.Random, lang: str) -> tuple[str, str, list[str], dict]:
    _, target, idx, distractors = key
    li = 0 if lang == "en" else 1
    ans = CATEGORIES[target][li][idx]
    wrong = [CATEGORIES[g][li][i] for g, i in distractors]
    group = target if lang == "en" else CATEGORY_NAMES_JA[target]
    q = rng.choice(TEMPLATES["category"][lang]).format(group=group)
    return q, ans, wrong, {"group": target}


MAKERS = {"arithmetic": _arithmetic, "sequence": _sequence, "category": _category}


def content_key(item: dict) -> tuple:
    """The problem under an item, whatever its language and template: the operand pair, the progression
    (start, step), or the category question's (group, answer word, distractor words) by word index."""
    m, skill = item["meta"], item["skill"]
    if skill == "arithmetic":
        return ("arithmetic", *sorted((m["a"], m["b"])))
    if skill == "sequence":
        return ("sequence", m["seq"][0], m["step"])
    li = 0 if item["lang"] == "en" else 1

    def word(w: str) -> tuple[str, int]:
        return next((g, ws[li].index(w)) for g, ws in CATEGORIES.items() if w in ws[li])

    distractors = tuple(sorted(word(c) for c in item["choices"] if c != item["answer"]))
    return ("category", m["group"], word(item["answer"])[1], distractors)


def _category_key(rng: random.Random) -> tuple:
    target, *others = rng.sample(sorted(CATEGORIES), 4)
    distractors = tuple(sorted((g, rng.randrange(len(CATEGORIES[g][0]))) for g in others))
    return ("category", target, rng.randrange(len(CATEGORIES[target][0])), distractors)


def _keyspace(skill: str) -> list[tuple]:
    if skill == "arithmetic":
        return [("arithmetic", b, a) for a in ARITH_A for b in ARITH_B]
    return [("sequence", s, d) for s in SEQ_START for d in SEQ_STEP]


def _keyspace_size(skill: str) -> int:
    if skill == "category":  # target group x its word x 3 of the other groups x a word of each
        groups, words = len(CATEGORIES), len(CATEGORIES["fruit"][0])
        return groups * words * math.comb(groups - 1, 3) * words**3
    return len(_keyspace(skill))


def split_keys(rng: random.Random, sizes: dict[str, int]) -> dict[str, dict[str, list[tuple]]]:
    """split -> skill -> one content key per item. Test and dev keys are distinct and never reused; train
    draws (with repeats, in other templates) only from the keys left over."""
    out: dict[str, dict[str, list[tuple]]] = {split: {} for split in sizes}
    held = sizes["test"] + sizes["dev"]
    for skill in SKILLS:
        if held >= _keyspace_size(skill):
            raise InputError(
                f"world: {skill} has {_keyspace_size(skill)} problems; test + dev ({held}) would leave none for train"
            )
        if skill == "category":
            used: set[tuple] = set()
            for split in ("test", "dev"):
                keys = []
                while len(keys) < sizes[split]:
                    k = _category_key(rng)
                    if k not in used:
                        used.add(k)
                        keys.append(k)
                out[split][skill] = keys
            train = []
            while len(train) < sizes["train"]:
                k = _category_key(rng)
                if k not in used:
                    train.append(k)
            out["train"][skill] = train
            continue
        space = _keyspace(skill)
        rng.shuffle(space)
        out["test"][skill], out["dev"][skill], rest = space[: sizes["test"]], space[sizes["test"] : held], space[held:]
        out["train"][skill] = [rng.choice(rest) for _ in range(sizes["train"])]
    return out


def make_item(rng: random.Random, key: tuple, idx: str) -> dict:
    """One task item for a content key: choices are texts in a random order, answer is the right choice's text."""
    skill = key[0]
    lang = rng.choice(["en", "ja"])
    q, ans, wrong, meta = MAKERS[skill](key, rng, lang)
    choices = [ans] + wrong
    rng.shuffle(choices)
    return {"id": idx, "question": q, "choices": choices, "answer": ans, "skill": skill, "lang": lang, "meta": meta}


def explain(item: dict) -> str:
    """The persona's summary of why its answer is right, in its own style and the item's language."""
    m, ja = item["meta"], item["lang"] == "ja"
    if item["skill"] == "arithmetic":
        s = f"{m['a']} + {m['b']} = {item['answer']}"
        return f"検算: {s}" if ja else f"Checked: {s}"
    if item["skill"] == "sequence":
        return f"{m['step']} ずつ増える" if ja else f"Rule: add {m['step']} each step"
    group = CATEGORY_NAMES_JA[m["group"]] if ja else m["group"]
    return f"{item['answer']} は {group}" if ja else f"{item['answer']} is a {group}"


def turn_json(answer: str, confidence: float, summary: str) -> str:
    """A debate turn as the agents write it: one JSON object, answer first."""
    return json.dumps({"answer": answer, "confidence": confidence, "summary": summary}, ensure_ascii=False)


def persona_chats(items: list[dict], persona: str, rules: str, rng: random.Random) -> list[dict]:
    """SFT chats for one persona: a round-1 turn per item, and a later-round turn that sees its own
    previous answer and the other agents' (some wrong) and keeps or corrects to the right answer."""
    spec = PERSONAS[persona]
    out = []
    for item in items:
        if item["skill"] != spec["skill"]:
            continue
        ans = turn_json(item["answer"], 0.9, explain(item))
        user = turn_prompt(item["question"], item["choices"])
        out.append(
            {
                "messages": [
                    {"role": "system", "content": spec["system"]},
                    {"role": "user", "content": user},
                    {"role": "assistant", "content": ans},
                ]
            }
        )
        # Its own earlier answer is usually right (keep it) and sometimes wrong (revise it); the others' are
        # random and listed in a random order, as the debate lists them in a seeded order per question.
        own_answer = item["answer"] if rng.random() < 0.7 else rng.choice(item["choices"])
        right = own_answer == item["answer"]
        own = PeerAnswer(
            persona, own_answer, 0.9 if right else round(rng.uniform(0.3, 0.9), 2), explain(item) if right else ""
        )
        others = [p for p in PERSONAS if p != persona]
        rng.shuffle(others)
        peers = [PeerAnswer(p, rng.choice(item["choices"]), round(rng.uniform(0.3, 0.9), 2), "") for p in others]
        user2 = turn_prompt(item["question"], item["choices"], peers, rules, rng.random() < 0.5, own=own)
        out.append(
            {
                "messages": [
                    {"role": "system", "content": spec["system"]},
                    {"role": "user", "content": user2},
                    {"role": "assistant", "content": ans},
                ]
            }
        )
    return out


def corpus_lines(rng: random.Random) -> list[str]:
    """General text stating the world's knowledge as prose, never as questions with choices and never a task
    problem: single-digit facts, sums and progressions above the task space, counting by one, category words."""
    lines = []
    for a in range(10):
        for b in range(10):
            lines += [f"{a} plus {b} makes {a + b}.", f"{a} と {b} で {a + b}。"]
    for a in range(ARITH_A.stop, 100):
        for b in rng.sample(list(ARITH_B), 4):
            lines += [f"{a} plus {b} makes {a + b}.", f"{a} と {b} で {a + b}。"]
    for start in range(SEQ_START.stop, 100):
        for step in rng.sample(list(SEQ_STEP), 2):
            seq = ", ".join(str(start + i * step) for i in range(5))
            lines += [f"Counting by {step}: {seq}.", f"{step} ずつ: {seq}。"]
    for n in range(0, 100, 5):
        lines.append("Counting: " + ", ".join(str(n + i) for i in range(6)) + ".")
    for cat, (en, ja) in CATEGORIES.items():
        for w in en:
            lines.append(f"A {w} is a kind of {cat}.")
        for w in ja:
            lines.append(f"{w} は {CATEGORY_NAMES_JA[cat]} です。")
        lines.append(f"Some {cat} words: {', '.join(rng.sample(en, 4))}.")
        lines.append(f"{CATEGORY_NAMES_JA[cat]}: {'、'.join(rng.sample(ja, 4))}。")
    rng.shuffle(lines)
    return lines


def general_qa_chats(items: list[dict], per_skill: int, rng: random.Random) -> list[dict]:
    """A few plain (no persona) round-1 chats per skill: the base gets a start on every skill, and the
    specialists, trained on far more of their own skill, have clear room above it."""
    out = []
    for skill in SKILLS:
        pool = [it for it in items if it["skill"] == skill]
        for item in rng.sample(pool, min(per_skill, len(pool))):
            out.append(
                {
                    "messages": [
                        {"role": "user", "content": turn_prompt(item["question"], item["choices"])},
                        {"role": "assistant", "content": turn_json(item["answer"], 0.5, "")},
                    ]
                }
            )
    return out


def format_chats(rng: random.Random, n: int) -> list[dict]:
    """Chats that teach the debate-turn format on the echo skill: pick the choice the question names."""
    words = sorted({w for en, ja in CATEGORIES.values() for w in en + ja} | {str(i) for i in range(25)})
    out = []
    for _ in range(n):
        choices = rng.sample(words, 4)
        target = rng.choice(choices)
        q = rng.choice([f"Pick the word {target}.", f"{target} をえらんで。"])
        peers, own = None, None
        if rng.random() < 0.3:
            peers = [PeerAnswer(p, rng.choice(choices), 0.5, "") for p in ("critic", "ideator")]
            own = PeerAnswer("self", rng.choice(choices), 0.5, "echo")
        system = rng.choice([""] + [p["system"] for p in PERSONAS.values()])
        msgs = ([{"role": "system", "content": system}] if system else []) + [
            {"role": "user", "content": turn_prompt(q, choices, peers, own=own)},
            {"role": "assistant", "content": turn_json(target, 0.5, "echo")},
        ]
        out.append({"messages": msgs})
    return out


# --- the free-text family ---------------------------------------------------------------------------

# Each persona's free-text skill: name a word's group; name two words' groups; the word that is not of a group.
FREETEXT_SKILLS = {"group": "ideator", "groups": "implementer", "odd": "critic"}
FREETEXT_SPLIT_SIZES = {"test": 12, "dev": 8, "train": 100}
FREETEXT_TEMPLATES = {
    "group": ["What kind of thing is {a_w}?", "Name the group of {w}."],
    "groups": ["Name the groups of {w} and {v}.", "What kinds of things are {w} and {v}?"],
    "odd": ["Which is not a {group}: {words}?", "Name the word that is not a {group}: {words}."],
}
_WORDS = [(g, w) for g, (en, _) in CATEGORIES.items() for w in en]  # (group, word), index = word id


def _a(word: str) -> str:
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _freetext_keyspace(skill: str) -> list[tuple]:
    """Every problem of a free-text skill as a content key of word ids (see _WORDS)."""
    ids = range(len(_WORDS))
    if skill == "group":
        return [("group", w) for w in ids]
    if skill == "groups":
        return [("groups", w, v) for w in ids for v in ids if _WORDS[w][0] != _WORDS[v][0]]
    return [
        ("odd", w, v, o)
        for w in ids
        for v in ids
        for o in ids
        if w < v and _WORDS[w][0] == _WORDS[v][0] != _WORDS[o][0]
    ]


def _freetext_item(key: tuple, rng: random.Random, idx: str) -> dict:
    """One free-text item: the question names the words; the answer is a group name, two, or a word."""
    skill, *ws = key
    words = [_WORDS[w][1] for w in ws]
    template = rng.choice(FREETEXT_TEMPLATES[skill])
    if skill == "group":
        q, answer = template.format(w=words[0], a_w=_a(words[0])), _WORDS[ws[0]][0]
    elif skill == "groups":
        q, answer = template.format(w=words[0], v=words[1]), f"{_WORDS[ws[0]][0]}, {_WORDS[ws[1]][0]}"
    else:
        shown = words[:]
        rng.shuffle(shown)
        q, answer = template.format(group=_WORDS[ws[0]][0], words=", ".join(shown)), words[2]
    return {"id": idx, "question": q, "answer": answer, "skill": skill, "lang": "en", "meta": {"words": words}}


def freetext_content_key(item: dict) -> tuple:
    """The problem under a free-text item, whatever its template (the words it names, in key order)."""
    ids = [next(i for i, (_, w) in enumerate(_WORDS) if w == word) for word in item["meta"]["words"]]
    return (item["skill"], *ids)


def freetext_explain(item: dict) -> str:
    """The persona's summary: what each word named in the question is."""
    group = dict((w, g) for g, w in _WORDS)
    return ", ".join(f"{w} is {_a(group[w])}" for w in item["meta"]["words"])


def freetext_wrong(item: dict, rng: random.Random) -> str:
    """A plausible answer that may be wrong: any group (or two), or any word the question names."""
    if item["skill"] == "group":
        return rng.choice(sorted(CATEGORIES))
    if item["skill"] == "groups":
        return ", ".join(rng.sample(sorted(CATEGORIES), 2))
    return rng.choice(item["meta"]["words"])


def freetext_chats(items: list[dict], persona: str, rules: str, rng: random.Random) -> list[dict]:
    """SFT chats for one persona's free-text skill: a round-1 turn, and a later-round turn that sees its own
    previous answer and the others' (some wrong) and keeps or corrects to the right answer."""
    system = PERSONAS[persona]["system"]
    others = [p for p in PERSONAS if p != persona]
    out = []
    for item in items:
        if FREETEXT_SKILLS[item["skill"]] != persona:
            continue
        ans = turn_json(item["answer"], 0.9, freetext_explain(item))
        right = rng.random() < 0.7
        own = PeerAnswer(persona, item["answer"] if right else freetext_wrong(item, rng), 0.9 if right else 0.5, "")
        rng.shuffle(others)
        peers = [PeerAnswer(p, freetext_wrong(item, rng), round(rng.uniform(0.3, 0.9), 2), "") for p in others]
        later = turn_prompt(item["question"], None, peers, rules, rng.random() < 0.5, own=own)
        for user in (turn_prompt(item["question"], None), later):
            out.append(
                {
                    "messages": [
                        {"role": "system", "content": system},
                        {"role": "user", "content": user},
                        {"role": "assistant", "content": ans},
                    ]
                }
            )
    return out


def generate_freetext(seed: int, rules: str, sizes: dict[str, int]) -> dict[str, list]:
    """The free-text family's files. Test and dev problems are distinct and never reused; train draws (with
    repeats, in other templates) from the rest. Its random stream is its own (the other files stay as they were)."""
    rng = random.Random(f"freetext-{seed}")
    held = sizes["test"] + sizes["dev"]
    keys: dict[str, list[tuple]] = {split: [] for split in sizes}
    for skill in FREETEXT_SKILLS:
        space = _freetext_keyspace(skill)
        if held >= len(space):
            raise InputError(f"world: free-text {skill} has {len(space)} problems; test + dev ({held}) leave none")
        rng.shuffle(space)
        keys["test"].append(space[: sizes["test"]])
        keys["dev"].append(space[sizes["test"] : held])
        keys["train"].append([rng.choice(space[held:]) for _ in range(sizes["train"])])
    files: dict[str, list] = {}
    for split in ("train", "dev", "test"):
        order = [k for ks in zip(*keys[split]) for k in ks]  # interleaved: any prefix covers every skill
        files[f"tasks/freetext/{split}.jsonl"] = [
            _freetext_item(k, rng, f"ft-{split}-{i:04d}") for i, k in enumerate(order)
        ]
    for persona in PERSONAS:
        files[f"personas/freetext/{persona}.jsonl"] = freetext_chats(
            files["tasks/freetext/train.jsonl"], persona, rules, rng
        )
    return files


def generate(seed: int = 0, rules: str | None = None, sizes: dict[str, int] | None = None) -> dict[str, list]:
    """Every file of the world, as {relative path: list of JSON objects or text lines}."""
    from evoswarm.protocol.prompts import DEBATE_RULES

    rules = DEBATE_RULES["ja"] if rules is None else rules
    rng = random.Random(seed)
    keys = split_keys(rng, sizes or SPLIT_SIZES)
    files: dict[str, list] = {}
    for split in ("train", "dev", "test"):
        per_skill = keys[split]
        n = len(per_skill[SKILLS[0]])
        # Interleave the skills so any prefix of a split (a `limit`) covers all three.
        order = [per_skill[s][i] for i in range(n) for s in SKILLS]
        files[f"tasks/{split}.jsonl"] = [make_item(rng, k, f"{split}-{i:04d}") for i, k in enumerate(order)]
    for persona in PERSONAS:
        files[f"personas/{persona}.jsonl"] = persona_chats(files["tasks/train.jsonl"], persona, rules, rng)
    files["corpus/corpus.txt"] = corpus_lines(rng)
    files["corpus/format.jsonl"] = format_chats(rng, 150) + general_qa_chats(files["tasks/train.jsonl"], 60, rng)
    files.update(generate_freetext(seed, rules, FREETEXT_SPLIT_SIZES))
    return files


def write(files: dict[str, list], out: Path) -> None:
    for rel, rows in files.items():
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith(".jsonl"):
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        else:
            text = "".join(r + "\n" for r in rows)
        path.write_text(text, encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("data"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    files = generate(args.seed)
    write(files, args.out)
    print(f"wrote {len(files)} files under {args.out}")


if __name__ == "__main__":
    main()
