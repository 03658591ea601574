#!/usr/bin/env python3
"""Times Google's rouge-score 0.1.2 ROUGE-L on the pairs of a JSONL file ({"pred","ref"} per line).
Prints: seconds, then the sum of F-measures (to check both sides scored the same pairs)."""
import json, sys, time
from rouge_score import rouge_scorer

pairs = [json.loads(l) for l in open(sys.argv[1])]
stem = len(sys.argv) > 2 and sys.argv[2] == "stem"
scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stem)
t = time.perf_counter()
total = sum(scorer.score(p["ref"], p["pred"])["rougeL"].fmeasure for p in pairs)
print(time.perf_counter() - t, total)
