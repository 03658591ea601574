"""Reference values for ttc-results' statistics tests (tests/stats_reference.rs).

Regenerate: python3 gen_stats.py > stats.json   (numpy, scipy, statsmodels)
"""
import json
import numpy as np
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar

rng = np.random.default_rng(20250101)
QS = [0, 1, 5, 25, 50, 75, 90, 95, 99, 99.9, 100]

percentiles = []
for n in [1, 2, 3, 10, 101, 1000]:
    v = rng.lognormal(mean=-1.0, sigma=0.8, size=n).round(6)
    percentiles.append({"values": v.tolist(), "qs": QS, "expected": np.percentile(v, QS).tolist()})

mcn = []
for b, c in [(2, 8), (0, 5), (3, 3), (1, 12), (12, 11), (0, 24), (10, 30), (25, 40), (100, 80), (0, 30)]:
    exact = b + c < 25
    r = mcnemar([[50, b], [c, 50]], exact=exact, correction=True)
    mcn.append({"a_only": b, "b_only": c, "exact": exact, "statistic": float(r.statistic), "p_value": float(r.pvalue)})

# Percentile-bootstrap CIs from scipy (Monte Carlo: compared with a tolerance).
x = rng.normal(0.6, 0.2, size=200).round(6)
m = stats.bootstrap((x,), np.mean, n_resamples=20000, method="percentile", confidence_level=0.95, random_state=1)
a = rng.uniform(0, 1, size=150).round(6)
d = (a + rng.normal(0.05, 0.1, size=150)).round(6)
paired = stats.bootstrap((a, d), lambda a, d: np.mean(d - a), paired=True, vectorized=False, n_resamples=20000,
                         method="percentile", confidence_level=0.95, random_state=2)
p95 = stats.bootstrap((a, d), lambda a, d: np.percentile(d, 95) - np.percentile(a, 95), paired=True,
                      vectorized=False, n_resamples=5000, method="percentile", confidence_level=0.95, random_state=3)
boot = {
    "mean": {"values": x.tolist(), "mean": float(np.mean(x)), "lo": float(m.confidence_interval.low),
             "hi": float(m.confidence_interval.high)},
    "paired_mean_diff": {"a": a.tolist(), "b": d.tolist(), "diff": float(np.mean(d - a)),
                         "lo": float(paired.confidence_interval.low), "hi": float(paired.confidence_interval.high)},
    "paired_p95_diff": {"diff": float(np.percentile(d, 95) - np.percentile(a, 95)),
                        "lo": float(p95.confidence_interval.low), "hi": float(p95.confidence_interval.high)},
    # Normal approximation mean +- z * sd / sqrt(n), ddof=1.
    "normal": {"lo": float(np.mean(x) - stats.norm.ppf(0.975) * np.std(x, ddof=1) / np.sqrt(len(x))),
               "hi": float(np.mean(x) + stats.norm.ppf(0.975) * np.std(x, ddof=1) / np.sqrt(len(x)))},
}
print(json.dumps({"percentiles": percentiles, "mcnemar": mcn, "bootstrap": boot}, indent=1))
