#!/usr/bin/env python3
"""Reference vectors for the text metrics, from the reference implementations themselves:
rouge-score 0.1.2 (Google; with nltk's Porter stemmer), sacrebleu 2.x `BLEU().sentence_score`, and
CRMArena's `normalize_answer` / `f1_score` / `exact_match_score` / `bleu_score` (crm_sandbox/agents/utils.py,
transcribed below).

Two files:
* text_vectors_synthetic.jsonl: our own pairs (texts included).
* text_vectors_real.jsonl: pairs built from the real datasets by fixed rules (see `real_pairs`; the Rust test
  rebuilds the texts from the data directory), so only ids + scores are committed.

usage: text_vectors.py DATA_DIR OUT_DIR
"""
import json, os, re, string, sys
from collections import Counter
from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU

TYPES = ["rouge1", "rouge2", "rougeL", "rougeLsum"]
PLAIN = rouge_scorer.RougeScorer(TYPES, use_stemmer=False)
STEM = rouge_scorer.RougeScorer(TYPES, use_stemmer=True)
BLEU_SCORER = BLEU()


def normalize_answer(s):  # crm_sandbox/agents/utils.py
    def remove_articles(text): return re.sub(r'\b(a|an|the)\b', ' ', text)
    def white_space_fix(text): return ' '.join(text.split())
    def handle_punc(text):
        exclude = set(string.punctuation + "".join([u"‘", u"’", u"´", u"`"]))
        return ''.join(ch if ch not in exclude else ' ' for ch in text)
    return white_space_fix(remove_articles(handle_punc(s.replace('_', ' ').lower()))).strip()


def prf(pred, gold):
    p, g = normalize_answer(pred).split(), normalize_answer(gold).split()
    same = sum((Counter(p) & Counter(g)).values())
    if same == 0:
        return 0.0, 0.0, 0.0
    precision, recall = 1.0 * same / len(p), 1.0 * same / len(g)
    return precision, recall, (2 * precision * recall) / (precision + recall)


def scores(pred, ref):
    out = {}
    for tag, sc in (("", PLAIN), ("stem_", STEM)):
        s = sc.score(ref, pred)
        for t in TYPES:
            out[tag + t] = s[t].fmeasure
    out["bleu"] = BLEU_SCORER.sentence_score(pred, [ref]).score / 100
    out["bleu_norm"] = BLEU_SCORER.sentence_score(normalize_answer(pred), [normalize_answer(ref)]).score / 100
    out["em"] = float(pred.strip() == ref)
    out["em_norm"] = float(normalize_answer(pred) == normalize_answer(ref))
    out["precision"], out["recall"], out["f1"] = prf(pred, ref)
    return out


def real_pairs(data):
    crm = json.load(open(os.path.join(data, "crmarena/tasks_natural.json")))
    gold = lambda x: "None" if x["answer"] is None else x["answer"]
    n = len(crm)
    for i, x in enumerate(crm):
        if i % 4 == 0:
            yield f"crm:{i}:q_vs_a", x["query"], gold(x)
        if i % 8 == 0:
            yield f"crm:{i}:a_vs_next", gold(x), gold(crm[(i + 1) % n])
        if i % 20 == 0:
            yield f"crm:{i}:req_vs_q", x["metadata"]["required"], x["query"]
    pro = json.load(open(os.path.join(data, "crmarena-pro/crmarena_b2b_tasks.json")))
    for i, x in enumerate(pro):
        if i % 20 == 0:
            yield f"pro:{i}:q_vs_a", x["query"], ", ".join("None" if a is None else a for a in x["answer"])
    root = os.path.join(data, "worfbench/gold_traj")
    k = 0
    for task in sorted(os.listdir(root)):
        for x in json.load(open(os.path.join(root, task, "graph_eval.json"))):
            if k % 25 == 0:
                yield f"worf:{k}:user_vs_gold", x["conversations"][1]["content"], x["conversations"][2]["content"]
            k += 1


def synthetic_pairs():
    base = [
        "The agent with the fewest transferred cases is 005Ws000001xZvdIAE.",
        "Regular calibration and software updates.",
        "Wipe the shoes with a damp cloth and let them air dry.",
        "Customers can return unworn items within 30 days of delivery.",
        "The running shoes were running late, but the runners ran on.",
        "Organizations organize organized organizing; generously generalized generalizations.",
        "It costs $3.50-4.00, i.e. roughly 3.75 (on average)!",
        "Node:\n1: find files\n2: count lines\nEdge: (START,1) (1,2) (2,END)",
        "Café naïve résumé: déjà vu for the über-cool coöperative.",
        "First sentence here.\nSecond sentence there.\nThird one everywhere.",
        "“Quoted” text with ‘curly’ quotes and an em—dash … ellipsis",
        "ALL CAPS ANSWER WITH THE ARTICLE A AND AN",
        "under_score and back`tick and acute´ marks",
        "March", "OR", "None", "", "   ", "a", "the the the",
    ]
    def variants(t):
        w = t.split()
        yield t
        yield t.lower()
        yield " ".join(w[::-1])
        yield " ".join(w[: max(1, len(w) // 2)])
        yield "The answer is: " + t
        yield t.replace(".", " .").replace(",", " ,")
        yield "<submit>" + t + "</submit>"
        yield "\n".join(w)
    seen = set()
    for i, ref in enumerate(base):
        for j, pred in enumerate(variants(ref)):
            if (pred, ref) not in seen:
                seen.add((pred, ref))
                yield f"syn:{i}:{j}", pred, ref
        other = base[(i + 3) % len(base)]
        yield f"syn:{i}:x", other, ref


def main():
    data, out = sys.argv[1], sys.argv[2]
    with open(os.path.join(out, "text_vectors_synthetic.jsonl"), "w") as f:
        for pid, pred, ref in synthetic_pairs():
            f.write(json.dumps({"id": pid, "pred": pred, "ref": ref, "scores": scores(pred, ref)}, ensure_ascii=False) + "\n")
    with open(os.path.join(out, "text_vectors_real.jsonl"), "w") as f:
        for pid, pred, ref in real_pairs(data):
            f.write(json.dumps({"id": pid, "scores": scores(pred, ref)}) + "\n")


if __name__ == "__main__":
    main()
