#!/usr/bin/env python3
"""Reference vectors for the WorfBench metrics, computed by the UNMODIFIED official evaluator
(zjunlp/WorfBench: evaluator/graph_evaluator.py and node_eval.py's workflow_to_graph_list; not vendored here:
point --worfbench-src at a checkout) with networkx 3.6.1. The only substitution is the embedder: the
deterministic `hash` stand-in of crates/embedders (tokens [a-z0-9]+ of the lowercased text, sha256 bucket % 4096,
L2-normalised counts), with cosine computed in float64 from float32 vectors and rounded to float32, as the
Rust side does.

usage: worfbench_vectors.py --worfbench-src DIR --gold-traj DATA/worfbench/gold_traj --out-dir crates/eval/tests/data
writes worfbench_cases.json (gold/pred texts + official P/R/F1 of both modes) and worfbench_self.jsonl (every
gold scored against itself: id + scores only).
"""
import argparse, hashlib, importlib.util, json, os, re, sys, types
import numpy as np


def hash_embed(text):
    v = np.zeros(4096)
    for tok in re.findall(r"[a-z0-9]+", text.lower()):
        v[int.from_bytes(hashlib.sha256(tok.encode()).digest()[:8], "little") % 4096] += 1.0
    n = np.linalg.norm(v)
    return (v / (n if n != 0 else 1.0)).astype(np.float32)


class _T:
    def __init__(self, a): self.a = a
    def cpu(self): return self
    def numpy(self): return self.a


def install_stubs():
    st = types.ModuleType("sentence_transformers")
    class SentenceTransformer:
        def __init__(self, *a, **k): pass
        def encode(self, texts, convert_to_tensor=False):
            return np.stack([hash_embed(t) for t in texts]) if texts else np.zeros((0, 4096), np.float32)
    util = types.ModuleType("sentence_transformers.util")
    util.cos_sim = lambda a, b: _T((a.astype(np.float64) @ b.astype(np.float64).T).astype(np.float32))
    st.SentenceTransformer, st.util = SentenceTransformer, util
    sys.modules["sentence_transformers"], sys.modules["sentence_transformers.util"] = st, util
    for name in ["LLM", "LLM.localLLM", "prompts", "prompts.eval_prompt"]:
        sys.modules[name] = types.ModuleType(name)
    sys.modules["LLM.localLLM"].localLLM = None
    sys.modules["prompts.eval_prompt"].two_shot_example = {}


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def score(ge, parse, pred_text, gold_text):
    gold, pred = parse(gold_text), parse(pred_text)
    if pred == []:
        return None, None
    out = []
    for fn in (ge.t_eval_nodes, ge.t_eval_graph):
        try:
            r = fn(pred, gold, ge.SentenceTransformer())
            out.append([float(r["precision"]), float(r["recall"]), float(r["f1_score"])])
        except ValueError:  # max() of an empty sequence upstream: counted as 0 by the Rust port
            out.append([0.0, 0.0, 0.0])
    return out


def variants(nodes):
    n = len(nodes)
    chain = lambda k: " ".join(["(START,1)"] + [f"({i},{i+1})" for i in range(1, k)] + [f"({k},END)"]) if k else "(START,END)"
    lst = lambda ns, sep=": ": "".join(f"{i+1}{sep}{t}\n" for i, t in enumerate(ns))
    order = sorted(range(n), key=lambda i: hashlib.sha256(f"{i}".encode()).hexdigest())
    return {
        "identical_text": None,
        "reversed_chain": "Node:\n" + lst(nodes[::-1]) + "Edge: " + chain(n),
        "drop_last_chain": "Node:\n" + lst(nodes[:-1]) + "Edge: " + chain(n - 1),
        "extra_irrelevant_node": "Node:\n" + lst(nodes + ["fold a paper crane underwater"]) + "Edge: " + chain(n + 1),
        "all_parallel": "Node:\n" + lst(nodes) + "Edge: " + " ".join([f"(START,{i})" for i in range(1, n + 1)] + [f"({i},END)" for i in range(1, n + 1)]),
        "no_overlap": "Node:\n" + lst([f"zzq qqv step {i}" for i in range(n)]) + "Edge: " + chain(n),
        "no_edges_unparsable": "Node:\n" + lst(nodes),
        "no_space_after_dot": "Node:\n" + lst(nodes, sep=".") + "Edges:\n" + chain(n).replace(" ", "\n"),
        "shuffled_chain": "Node:\n" + lst([nodes[i] for i in order]) + "Edge: " + chain(n),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worfbench-src", required=True)
    ap.add_argument("--gold-traj", required=True)
    ap.add_argument("--out-dir", required=True)
    a = ap.parse_args()
    install_stubs()
    ge = load(os.path.join(a.worfbench_src, "evaluator", "graph_evaluator.py"), "graph_evaluator")
    ne_path = os.path.join(a.worfbench_src, "node_eval.py")
    parse = load(ne_path if os.path.exists(ne_path) else os.path.join(a.worfbench_src, "node_eval_parse.py"), "node_eval").workflow_to_graph_list

    golds = {}
    for task in sorted(os.listdir(a.gold_traj)):
        for item in json.load(open(os.path.join(a.gold_traj, task, "graph_eval.json"))):
            golds[item["id"]] = (task, item["conversations"][-1]["content"])

    with open(os.path.join(a.out_dir, "worfbench_self.jsonl"), "w") as f:
        for gid, (task, text) in golds.items():
            chain, graph = score(ge, parse, text, text)
            f.write(json.dumps({"id": gid, "task": task, "chain": chain, "graph": graph}) + "\n")

    picked = ["os_92", "alfworld_2445", "seal_tools_16", "seal_tools_2", "toolbench_52", "lumos_21358", "wikihow_23", "wikihow_3"]
    dup = [g for g, (t, x) in golds.items() if t == "alfworld" and len(set(parse(x)["nodes"])) < len(parse(x)["nodes"])]
    picked += dup[:3]
    by_task = {}
    for g, (t, _) in golds.items():
        by_task.setdefault(t, []).append(g)
    for t, ids in sorted(by_task.items()):
        picked += ids[:: max(1, len(ids) // 3)][:3]
    picked = list(dict.fromkeys(p for p in picked if p in golds))
    cases = []
    for gid in picked:
        task, gold = golds[gid]
        nodes = [x for x in parse(gold)["nodes"] if x not in ("START", "END")]
        for name, pred in variants(nodes).items():
            pred = gold if pred is None else pred
            chain, graph = score(ge, parse, pred, gold)
            cases.append({"id": gid, "variant": name, "pred": pred, "chain": chain, "graph": graph})
    json.dump({"golds": {g: golds[g][1] for g in picked}, "cases": cases}, open(os.path.join(a.out_dir, "worfbench_cases.json"), "w"), indent=0)
    print(len(golds), "golds self-scored;", len(cases), "cases from", len(picked), "golds")


if __name__ == "__main__":
    main()
