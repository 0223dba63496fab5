"""The embedded task world: a multiple-choice family with three skills, in English and Japanese.

Everything here is deterministic from a seed. `python -m evoswarm.world.generator --out data --seed 0`
regenerates the committed files under data/ (the default world, DEFAULT), and
`python -m evoswarm.world.generator --world testbed --out data/testbed` the testbed world's (TESTBED, below):

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

The testbed world (same layout, no free-text family) is built so that cooperation has something to win:
- skills that share no computation: arithmetic (a + b), compare (the largest of four numbers: ordering,
  no addition) and category; the default's sequence (a + step, three times) was addition again;
- category held out by word: each split asks only its own words (answers and distractors), so no
  (question, answer) pair is in two splits and a held-out word is known only from the corpus's prose;
  arithmetic and compare put the whole problem in the question, held out by content key as before;
- dev 100 and test 200 items per skill;
- SFT turns are round-1 turns only: the default's later-round turns showed the agent its own previous
  answer at confidence 0.90 with a summary exactly when it was right, a cue no debate shows.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import math
import random
from pathlib import Path

from evoswarm.io import InputError
from evoswarm.protocol.prompts import PeerAnswer, turn_prompt
from evoswarm.world.items import shared_question_answer

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
# The testbed's further words, eight a group (appended: a default word keeps its index).
MORE_CATEGORY_WORDS = {
    "fruit": (
        ["banana", "mango", "kiwi", "lime", "fig", "papaya", "apricot", "coconut"],
        ["バナナ", "マンゴー", "キウイ", "ライム", "いちじく", "パパイヤ", "あんず", "ココナッツ"],
    ),
    "animal": (
        ["lion", "wolf", "fox", "deer", "goat", "monkey", "zebra", "camel"],
        ["ライオン", "おおかみ", "きつね", "しか", "やぎ", "さる", "シマウマ", "らくだ"],
    ),
    "tool": (
        ["axe", "pliers", "chisel", "clamp", "trowel", "ladder", "scissors", "hoe"],
        ["おの", "ペンチ", "のみ", "クランプ", "こて", "はしご", "はさみ", "くわ"],
    ),
    "color": (
        ["pink", "gray", "brown", "gold", "silver", "navy", "beige", "violet"],
        ["ピンク", "はいいろ", "ちゃいろ", "きんいろ", "ぎんいろ", "こんいろ", "ベージュ", "すみれいろ"],
    ),
    "vehicle": (
        ["taxi", "van", "tram", "subway", "rocket", "scooter", "yacht", "jet"],
        ["タクシー", "バン", "ろめんでんしゃ", "ちかてつ", "ロケット", "スクーター", "ヨット", "ジェット"],
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
    "compare": {
        "en": ["Which is the largest: {nums}?", "Pick the largest number: {nums}."],
        "ja": ["いちばん おおきい かずは？ {nums}", "{nums} で いちばん おおきいのは？"],
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
# compare: four distinct numbers of this range (the corpus states only pairs: which of two is more).
COMPARE_NUMS = range(10, 100)


@dataclasses.dataclass(frozen=True)
class World:
    """What sets one world apart from another; every function below takes one (default: DEFAULT)."""

    name: str
    skills: tuple[str, ...]
    personas: dict[str, dict]  # persona -> {skill, system}
    sizes: dict[str, int]  # items per skill in each split
    arith_a: range  # the first operand of a task sum; the corpus states sums above it
    categories: dict[str, tuple[list[str], list[str]]]  # group -> (English words, Japanese words)
    # Category words held out per group for test and dev (each split asks only its own words), or None:
    # every split asks every word and only the (group, answer, distractors) problem is held out.
    held_words: dict[str, int] | None
    later_rounds: bool  # persona SFT includes later-round turns (see persona_chats)
    freetext: bool  # the world includes the free-text family
    # No (question, answer) pair may be in two task splits: the generator refuses to write such a world.
    disjoint_pairs: bool


DEFAULT = World(
    name="default",
    skills=SKILLS,
    personas=PERSONAS,
    sizes=SPLIT_SIZES,
    arith_a=ARITH_A,
    categories=CATEGORIES,
    held_words=None,
    later_rounds=True,
    freetext=True,
    disjoint_pairs=False,
)
TESTBED = World(
    name="testbed",
    skills=("arithmetic", "compare", "category"),
    personas={**PERSONAS, "implementer": {**PERSONAS["implementer"], "skill": "compare"}},
    sizes={"test": 200, "dev": 100, "train": 600},
    arith_a=range(10, 80),  # 630 problems: 300 held out, 330 left for train
    categories={
        g: (en + MORE_CATEGORY_WORDS[g][0], ja + MORE_CATEGORY_WORDS[g][1]) for g, (en, ja) in CATEGORIES.items()
    },
    held_words={"test": 5, "dev": 5},  # of 16 a group: 6 left for train
    later_rounds=False,
    freetext=False,
    disjoint_pairs=True,
)
WORLDS = {w.name: w for w in (DEFAULT, TESTBED)}


def _arithmetic(key: tuple, rng: random.Random, lang: str, world: World) -> tuple[str, str, list[str], dict]:
    _, b, a = key
    ans = a + b
    pool = [ans - 2, ans - 1, ans + 1, ans + 2, ans - 10, ans + 10]
    wrong = rng.sample(pool, 3)
    q = rng.choice(TEMPLATES["arithmetic"][lang]).format(a=a, b=b)
    return q, str(ans), [str(v) for v in wrong], {"a": a, "b": b}


def _sequence(key: tuple, rng: random.Random, lang: str, world: World) -> tuple[str, str, list[str], dict]:
    _, start, step = key
    seq = [start + i * step for i in range(3)]
    ans = start + 3 * step
    # Pattern slips (repeat the last term, skip one) and near misses (off by one or by ten).
    pool = sorted({seq[-1], ans + step, ans - 1, ans + 1, ans + 10} - {ans})
    wrong = rng.sample(pool, 3)
    q = rng.choice(TEMPLATES["sequence"][lang]).format(step=step, seq=", ".join(map(str, seq)))
    return q, str(ans), [str(v) for v in wrong], {"seq": seq, "step": step}


def _category(key: tuple, rng: random.Random, lang: str, world: World) -> tuple[str, str, list[str], dict]:
    _, target, idx, distractors = key
    li = 0 if lang == "en" else 1
    ans = world.categories[target][li][idx]
    wrong = [world.categories[g][li][i] for g, i in distractors]
    group = target if lang == "en" else CATEGORY_NAMES_JA[target]
    q = rng.choice(TEMPLATES["category"][lang]).format(group=group)
    return q, ans, wrong, {"group": target}


def _compare(key: tuple, rng: random.Random, lang: str, world: World) -> tuple[str, str, list[str], dict]:
    nums = list(key[1:])
    rng.shuffle(nums)  # the order the question lists them in (the choices get their own)
    q = rng.choice(TEMPLATES["compare"][lang]).format(nums=", ".join(map(str, nums)))
    return q, str(max(nums)), [str(n) for n in nums if n != max(nums)], {"nums": nums}


MAKERS = {"arithmetic": _arithmetic, "sequence": _sequence, "category": _category, "compare": _compare}


def content_key(item: dict, world: World = DEFAULT) -> tuple:
    """The problem under an item, whatever its language and template: the operand pair, the progression
    (start, step), the four numbers compared, or the category question's (group, answer word, distractor
    words) by word index."""
    m, skill = item["meta"], item["skill"]
    if skill == "arithmetic":
        return ("arithmetic", *sorted((m["a"], m["b"])))
    if skill == "sequence":
        return ("sequence", m["seq"][0], m["step"])
    if skill == "compare":
        return ("compare", *sorted(m["nums"]))
    li = 0 if item["lang"] == "en" else 1

    def word(w: str) -> tuple[str, int]:
        return next((g, ws[li].index(w)) for g, ws in world.categories.items() if w in ws[li])

    distractors = tuple(sorted(word(c) for c in item["choices"] if c != item["answer"]))
    return ("category", m["group"], word(item["answer"])[1], distractors)


def _category_key(rng: random.Random, pool: dict[str, list[int]]) -> tuple:
    """A category problem whose words are drawn from `pool` (group -> word indices)."""
    target, *others = rng.sample(sorted(pool), 4)
    distractors = tuple(sorted((g, rng.choice(pool[g])) for g in others))
    return ("category", target, rng.choice(pool[target]), distractors)


def _compare_key(rng: random.Random, pool: None) -> tuple:
    return ("compare", *sorted(rng.sample(COMPARE_NUMS, 4)))


# Skills with too many problems to list: a split's keys are drawn at random, and any already held out redrawn.
DRAWN = {"category": _category_key, "compare": _compare_key}


def _keyspace(skill: str, world: World = DEFAULT) -> list[tuple]:
    if skill == "arithmetic":
        return [("arithmetic", b, a) for a in world.arith_a for b in ARITH_B]
    return [("sequence", s, d) for s in SEQ_START for d in SEQ_STEP]


def _category_space(pool: dict[str, list[int]]) -> int:
    """Category problems in `pool`: a target group x its word x 3 of the other groups x a word of each."""
    return sum(
        len(pool[target]) * sum(math.prod(len(pool[g]) for g in gs) for gs in itertools.combinations(others, 3))
        for target in pool
        for others in [[g for g in pool if g != target]]
    )


def _category_pools(rng: random.Random, world: World) -> dict[str, dict[str, list[int]]]:
    """split -> group -> the word indices the split asks: every word, or (world.held_words) each group's
    words cut at random into test, dev and train ones."""
    every = {g: list(range(len(en))) for g, (en, _) in world.categories.items()}
    if world.held_words is None:
        return {split: every for split in ("test", "dev", "train")}
    pools: dict[str, dict[str, list[int]]] = {"test": {}, "dev": {}, "train": {}}
    for g, ids in every.items():
        ids = rng.sample(ids, len(ids))
        nt, nd = world.held_words["test"], world.held_words["dev"]
        pools["test"][g], pools["dev"][g], pools["train"][g] = ids[:nt], ids[nt : nt + nd], ids[nt + nd :]
    return pools


def _check_space(skill: str, space: dict[str, int], sizes: dict[str, int], shared: bool) -> None:
    """Refuse sizes the problems cannot meet: `space` is split -> problems it may ask (one number for all
    splits when `shared`: test and dev then take theirs out of it and train needs one left)."""
    held = sizes["test"] + sizes["dev"]
    if shared and held >= space["test"]:
        raise InputError(f"world: {skill} has {space['test']} problems; test + dev ({held}) would leave none for train")
    for split in () if shared else sizes:
        if space[split] < (sizes[split] if split != "train" else 1):
            raise InputError(
                f"world: {skill}'s {split} words make {space[split]} problems; {split} asks {sizes[split]}"
            )


def split_keys(rng: random.Random, sizes: dict[str, int], world: World = DEFAULT) -> dict[str, dict[str, list[tuple]]]:
    """split -> skill -> one content key per item. Test and dev keys are distinct and never reused; train
    draws (with repeats, in other templates) only from the keys left over."""
    out: dict[str, dict[str, list[tuple]]] = {split: {} for split in sizes}
    held = sizes["test"] + sizes["dev"]
    for skill in world.skills:
        if skill not in DRAWN:
            space = _keyspace(skill, world)
            _check_space(skill, dict.fromkeys(sizes, len(space)), sizes, shared=True)
            rng.shuffle(space)
            out["test"][skill], out["dev"][skill] = space[: sizes["test"]], space[sizes["test"] : held]
            rest = space[held:]
            out["train"][skill] = [rng.choice(rest) for _ in range(sizes["train"])]
            continue
        if skill == "category":
            pools = _category_pools(rng, world)
            _check_space(skill, {s: _category_space(p) for s, p in pools.items()}, sizes, world.held_words is None)
        else:
            pools = dict.fromkeys(sizes)
            _check_space(skill, dict.fromkeys(sizes, math.comb(len(COMPARE_NUMS), 4)), sizes, shared=True)
        used: set[tuple] = set()
        for split in ("test", "dev", "train"):
            keys = []
            while len(keys) < sizes[split]:
                k = DRAWN[skill](rng, pools[split])
                if k not in used:
                    keys.append(k)
                    if split != "train":  # train may repeat a problem (in another template), never a held-out one
                        used.add(k)
            out[split][skill] = keys
    return out


def make_item(rng: random.Random, key: tuple, idx: str, world: World = DEFAULT) -> dict:
    """One task item for a content key: choices are texts in a random order, answer is the right choice's text."""
    skill = key[0]
    lang = rng.choice(["en", "ja"])
    q, ans, wrong, meta = MAKERS[skill](key, rng, lang, world)
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
    if item["skill"] == "compare":
        return f"{item['answer']} が いちばん おおきい" if ja else f"{item['answer']} is the largest"
    group = CATEGORY_NAMES_JA[m["group"]] if ja else m["group"]
    return f"{item['answer']} は {group}" if ja else f"{item['answer']} is a {group}"


def turn_json(answer: str, confidence: float, summary: str) -> str:
    """A debate turn as the agents write it: one JSON object, answer first."""
    return json.dumps({"answer": answer, "confidence": confidence, "summary": summary}, ensure_ascii=False)


def persona_chats(
    items: list[dict], persona: str, rules: str, rng: random.Random, world: World = DEFAULT
) -> list[dict]:
    """SFT chats for one persona: a round-1 turn per item, and (world.later_rounds) a later-round turn that
    sees its own previous answer and the other agents' (some wrong) and keeps or corrects to the right answer."""
    spec = world.personas[persona]
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
        if not world.later_rounds:
            continue
        # Its own earlier answer is usually right (keep it) and sometimes wrong (revise it); the others' are
        # random and listed in a random order, as the debate lists them in a seeded order per question.
        own_answer = item["answer"] if rng.random() < 0.7 else rng.choice(item["choices"])
        right = own_answer == item["answer"]
        own = PeerAnswer(
            persona, own_answer, 0.9 if right else round(rng.uniform(0.3, 0.9), 2), explain(item) if right else ""
        )
        others = [p for p in world.personas if p != persona]
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


def corpus_lines(rng: random.Random, world: World = DEFAULT) -> list[str]:
    """General text stating the world's knowledge as prose, never as questions with choices and never a task
    problem: single-digit facts, sums and progressions above the task space, counting by one, which of two
    numbers is more (a compare problem has four), category words (every word of every split: a held-out
    word's group is known from here only)."""
    lines = []
    for a in range(10):
        for b in range(10):
            lines += [f"{a} plus {b} makes {a + b}.", f"{a} と {b} で {a + b}。"]
    for a in range(world.arith_a.stop, 100):
        for b in rng.sample(list(ARITH_B), 4):
            lines += [f"{a} plus {b} makes {a + b}.", f"{a} と {b} で {a + b}。"]
    for start in range(SEQ_START.stop, 100) if "sequence" in world.skills else ():
        for step in rng.sample(list(SEQ_STEP), 2):
            seq = ", ".join(str(start + i * step) for i in range(5))
            lines += [f"Counting by {step}: {seq}.", f"{step} ずつ: {seq}。"]
    for n in range(0, 100, 5):
        lines.append("Counting: " + ", ".join(str(n + i) for i in range(6)) + ".")
    for a in COMPARE_NUMS if "compare" in world.skills else ():
        for b in rng.sample([n for n in COMPARE_NUMS if n != a], 4):
            big, small = max(a, b), min(a, b)
            lines += [f"{big} is more than {small}.", f"{big} は {small} より おおきい。"]
    for cat, (en, ja) in world.categories.items():
        for w in en:
            lines.append(f"A {w} is a kind of {cat}.")
        for w in ja:
            lines.append(f"{w} は {CATEGORY_NAMES_JA[cat]} です。")
        lines.append(f"Some {cat} words: {', '.join(rng.sample(en, 4))}.")
        lines.append(f"{CATEGORY_NAMES_JA[cat]}: {'、'.join(rng.sample(ja, 4))}。")
    rng.shuffle(lines)
    return lines


def general_qa_chats(items: list[dict], per_skill: int, rng: random.Random, world: World = DEFAULT) -> list[dict]:
    """A few plain (no persona) round-1 chats per skill: the base gets a start on every skill, and the
    specialists, trained on far more of their own skill, have clear room above it."""
    out = []
    for skill in world.skills:
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


def format_chats(rng: random.Random, n: int, world: World = DEFAULT) -> list[dict]:
    """Chats that teach the debate-turn format on the echo skill: pick the choice the question names. The
    turns shown (own and others') are random choices at one confidence: nothing in them tells right from wrong."""
    words = sorted({w for en, ja in world.categories.values() for w in en + ja} | {str(i) for i in range(25)})
    out = []
    for _ in range(n):
        choices = rng.sample(words, 4)
        target = rng.choice(choices)
        q = rng.choice([f"Pick the word {target}.", f"{target} をえらんで。"])
        peers, own = None, None
        if rng.random() < 0.3:
            peers = [PeerAnswer(p, rng.choice(choices), 0.5, "") for p in ("critic", "ideator")]
            own = PeerAnswer("self", rng.choice(choices), 0.5, "echo")
        system = rng.choice([""] + [p["system"] for p in world.personas.values()])
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


def generate(
    seed: int = 0, rules: str | None = None, sizes: dict[str, int] | None = None, world: World = DEFAULT
) -> dict[str, list]:
    """Every file of `world`, as {relative path: list of JSON objects or text lines}."""
    from evoswarm.protocol.prompts import DEBATE_RULES

    rules = DEBATE_RULES["ja"] if rules is None else rules
    rng = random.Random(seed)
    keys = split_keys(rng, sizes or world.sizes, world)
    files: dict[str, list] = {}
    for split in ("train", "dev", "test"):
        per_skill = keys[split]
        n = len(per_skill[world.skills[0]])
        # Interleave the skills so any prefix of a split (a `limit`) covers all three.
        order = [per_skill[s][i] for i in range(n) for s in world.skills]
        files[f"tasks/{split}.jsonl"] = [make_item(rng, k, f"{split}-{i:04d}", world) for i, k in enumerate(order)]
    if world.disjoint_pairs:
        splits = {f"tasks/{split}.jsonl": files[f"tasks/{split}.jsonl"] for split in ("train", "dev", "test")}
        if shared := shared_question_answer(splits):
            raise InputError(f"world {world.name}: {shared}")
    for persona in world.personas:
        files[f"personas/{persona}.jsonl"] = persona_chats(files["tasks/train.jsonl"], persona, rules, rng, world)
    files["corpus/corpus.txt"] = corpus_lines(rng, world)
    files["corpus/format.jsonl"] = format_chats(rng, 150, world) + general_qa_chats(
        files["tasks/train.jsonl"], 60, rng, world
    )
    if world.freetext:
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
    ap.add_argument("--world", choices=sorted(WORLDS), default=DEFAULT.name)
    args = ap.parse_args()
    files = generate(args.seed, world=WORLDS[args.world])
    write(files, args.out)
    print(f"wrote {len(files)} files under {args.out}")


if __name__ == "__main__":
    main()
