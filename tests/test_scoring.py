"""The scorers: the free-text ones (SQuAD token F1, ROUGE-L by rouge-score), the registry against the
schema, the vote's grouping by the scorer's normalisation, and free-text items with nothing to score."""

import pytest
from evoswarm.io import InputError
from evoswarm.protocol.scoring import FREE_TEXT, SCORERS, squad_normalize, vote_key, weighted_vote
from evoswarm.world.items import load_items


def test_free_text_scorers_are_scorers():
    assert set(FREE_TEXT) <= set(SCORERS)


def test_squad_normalisation_and_token_f1():
    assert squad_normalize("  The Fruit,  an ANIMAL! ") == "fruit animal"
    f1 = SCORERS["f1"]
    assert f1("The fruit.", "fruit") == 1.0
    assert f1("fruit, tool", "fruit, animal") == pytest.approx(0.5)  # 1 of 2 tokens both ways
    assert f1("fruit", "fruit, animal") == pytest.approx(2 * 1.0 * 0.5 / 1.5)  # precision 1, recall 1/2
    assert f1("fruit fruit", "fruit") == pytest.approx(2 * 0.5 * 1.0 / 1.5)  # tokens count as a multiset
    assert f1("", "fruit") == 0.0 and f1("a the", "fruit") == 0.0


def test_rouge_l_counts_order_where_f1_does_not():
    rouge, f1 = SCORERS["rouge_l"], SCORERS["f1"]
    assert rouge("animal, fruit", "fruit, animal") == pytest.approx(0.5)  # longest common subsequence: 1 of 2
    assert f1("animal, fruit", "fruit, animal") == 1.0
    assert rouge("The Fruit, animal.", "fruit, animal") == 1.0  # the same normalisation as F1
    assert rouge("fruit blue animal", "fruit, animal") == pytest.approx(2 * (2 / 3) * 1.0 / (2 / 3 + 1.0))
    assert rouge("りんご", "りんご") == 1.0  # rouge-score's own tokenizer would drop these words


def test_free_text_vote_groups_answers_by_the_scorers_normalisation():
    answers = [("The fruit.", 0.4), ("fruit", 0.4), ("animal", 0.7)]
    winner, scores = weighted_vote(answers, 0, "q", vote_key("f1"))
    assert scores == {"fruit": 0.8, "animal": 0.7} and winner in ("The fruit.", "fruit")
    # The multiple-choice normalisation keeps "the fruit" apart: the split vote loses.
    assert weighted_vote(answers, 0, "q", vote_key("choice"))[0] == "animal"


@pytest.mark.parametrize(
    "answer, scorer, problem",
    [
        ("", "f1", "'answer' must be a non-empty string"),
        ("The .", "rouge_l", "'answer' 'The .' is empty once normalised for rouge_l (no punctuation or articles)"),
    ],
)
def test_free_text_items_with_nothing_to_score_name_file_and_line(tmp_path, answer, scorer, problem):
    tasks = tmp_path / "test.jsonl"
    tasks.write_text(
        '{"id": "a", "question": "What kind of thing is a pear?", "answer": "fruit"}\n'
        + f'{{"id": "b", "question": "What kind of thing is a dog?", "answer": "{answer}"}}\n'
    )
    with pytest.raises(InputError) as e:
        load_items(str(tasks), scorer=scorer)
    assert str(e.value) == f"{tasks}:2: {problem}"
    if answer:  # the choice scorers have no normalisation to empty it
        assert len(load_items(str(tasks), scorer="exact")) == 2


def test_free_text_scorers_need_generated_turns():
    from conftest import REPO
    from evoswarm.config import load_config, validate

    config = load_config(REPO / "configs/freetext.yaml")
    assert config["tasks"]["scorer"] == "rouge_l" and config["debate"]["answer_mode"] == "generate"
    config["debate"]["answer_mode"] = "loglik"
    with pytest.raises(InputError, match="tasks.scorer rouge_l scores free text: set debate.answer_mode: generate"):
        validate(config)
