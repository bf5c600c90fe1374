"""Tiny benchmark data in the layouts of ../shared/data (and the official TyDiQA-GoldP JSON)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

TYDIQA = {
    "version": "TyDiQA-GoldP-1.1-dev",
    "data": [
        {"title": "Helsinki", "paragraphs": [{
            "context": "Helsinki on Suomen pääkaupunki ja suurin kaupunki.",
            "qas": [
                {"id": "finnish-1", "question": "Mikä on Suomen pääkaupunki?",
                 "answers": [{"text": "Helsinki", "answer_start": 0}]},
                {"id": "finnish-2", "question": "Mikä on Suomen suurin kaupunki?",
                 "answers": [{"text": "Helsinki", "answer_start": 0}]},
            ]}]},
        {"title": "Jakarta", "paragraphs": [{
            "context": "Jakarta adalah ibu kota Indonesia.",
            "qas": [
                {"id": "indonesian-1", "question": "Apa ibu kota Indonesia?",
                 "answers": [{"text": "Jakarta", "answer_start": 0}]},
                {"id": "indonesian-2", "question": "Jakarta adalah ibu kota negara apa?",
                 "answers": [{"text": "Indonesia", "answer_start": 24}]},
            ]}]},
        {"title": "Paris", "paragraphs": [{
            "context": "Paris is the capital of France.",
            "qas": [
                {"id": "english-1", "question": "What is the capital of France?",
                 "answers": [{"text": "Paris", "answer_start": 0}]},
                {"id": "english-2", "question": "Paris is the capital of which country?",
                 "answers": [{"text": "France", "answer_start": 24},
                             {"text": "the French Republic", "answer_start": 0}]},
            ]}]},
    ],
}

BBH_PROMPT = """CANARY LINE
-----
Answer yes or no.

Q: Is 2 even?
A: Let's think step by step.
2 divided by 2 is 1. So the answer is yes.

Q: Is 3 even?
Options:
(A) yes
(B) no
A: Let's think step by step. 3 is odd.
So the answer is (B).
"""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.fixture
def tiny_data(tmp_path: Path) -> Path:
    """A small data dir: MMLU (1 subject), BBH (1 subtask), GSM8K, MGSM (en, de), TyDiQA-GoldP."""
    root = tmp_path / "data"
    _write(root / "mmlu/dev/astronomy_dev.csv",
           'What is the Sun?,A star,A planet,A moon,A comet,A\n"Is Mars red, or blue?",Red,Blue,Green,White,A\n')
    _write(root / "mmlu/test/astronomy_test.csv",
           "Which planet is largest?,Mars,Jupiter,Venus,Earth,B\nHow many moons has Earth?,0,1,2,3,B\n")
    _write(root / "mmlu/flan_cot_prompts.json", json.dumps({
        "astronomy": "The following are multiple choice questions (with answers) about astronomy.\n\n"
                     "Q: What is the Sun?\n(A) A star (B) A planet (C) A moon (D) A comet\n"
                     "A: Let's think step by step. The Sun is a star. The answer is (A).\n\n"}))
    _write(root / "bbh/tasks/yes_no.json", json.dumps({"canary": "x", "examples": [
        {"input": "Is 4 even?", "target": "yes"}, {"input": "Is 5 even?\nOptions:\n(A) yes\n(B) no", "target": "(B)"}]}))
    _write(root / "bbh/cot-prompts/yes_no.txt", BBH_PROMPT)
    _write(root / "gsm8k/test.jsonl", "\n".join(json.dumps(r) for r in [
        {"question": "Tom has 3 apples and buys 2. How many?", "answer": "3 + 2 = <<3+2=5>>5\n#### 5"},
        {"question": "A car costs $1,200 and a bike $300. Total?", "answer": "1200+300=1500\n#### 1,500"},
    ]) + "\n")
    ex = {"EXEMPLAR_NUMBER_ANSWERS": [11, 5], "EXEMPLAR_EQUATION_SOLUTIONS": ["", ""], "MGSM_EXEMPLARS": {
        "en": {"1": {"q": "Question: Roger has 5 balls and buys 6. How many?",
                     "a": "Step-by-Step Answer: 5 + 6 = 11. The answer is 11."},
               "2": {"q": "Question: 3 cars and 2 more arrive. How many?",
                     "a": "Step-by-Step Answer: 3 + 2 = 5. The answer is 5."}},
        "de": {"1": {"q": "Frage: Roger hat 5 Bälle und kauft 6. Wie viele?",
                     "a": "Schritt-für-Schritt-Antwort: 5 + 6 = 11. Die Antwort lautet 11."},
               "2": {"q": "Frage: 3 Autos und 2 weitere kommen. Wie viele?",
                     "a": "Schritt-für-Schritt-Antwort: 3 + 2 = 5. Die Antwort lautet 5."}}}}
    _write(root / "mgsm/exemplars.json", json.dumps(ex, ensure_ascii=False))
    _write(root / "mgsm/mgsm_en.tsv", "Ann has 2 pens and gets 2. How many?\t4\nBob has 10 and loses 3.\t7\n")
    _write(root / "mgsm/mgsm_de.tsv", "Anna hat 2 Stifte und bekommt 2. Wie viele?\t4\n")
    _write(root / "tydiqa/tydiqa-goldp-v1.1-dev.json", json.dumps(TYDIQA, ensure_ascii=False))
    return root
