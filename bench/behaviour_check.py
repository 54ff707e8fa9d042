"""quality_drift's behaviour check: its out-of-bag AUC against 3-fold cross-validation.

The check (`detectors/_behaviour.py`) fits one random forest to tell an agent's recent
runs from its reference runs and reads the out-of-bag ROC AUC. Until session 8 it
cross-validated three forests for that figure. This replays both on simulated run
feature vectors (200 reference + 100 recent runs, the defaults) in three scenarios —
stationary, a subtle shift of the step count, a shift of one tool's share — and
prints, per method, the AUC's mean, 95th percentile and maximum, how many samples
reach the default drift threshold (0.7), and the CPU per check.

    .venv/bin/python -m bench.behaviour_check
    .venv/bin/python -m bench.behaviour_check --samples 100
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

from detectors._behaviour import _classifier_test, _forest, _matrix

Runs = list[dict[str, float]]
THRESHOLD = 0.7
# (mean steps, share of the "search" tool) of the recent runs; the reference is (6, 0.6)
SCENARIOS = {
    "stationary": (6.0, 0.6),
    "step count +0.8": (6.8, 0.6),
    "tool share -0.15": (6.0, 0.45),
}


def run_features(rng: random.Random, steps: float, search_share: float) -> dict[str, float]:
    """One finished run's features, as the detector derives them."""
    n = max(1, round(rng.gauss(steps, 1.5)))
    tools = {"search": 0, "crm.lookup": 0}
    for _ in range(n):
        tools["search" if rng.random() < search_share else "crm.lookup"] += 1
    features: dict[str, float] = {
        "steps": 2 * n,
        "llm_calls": n,
        "tool_calls": n,
        "distinct_tools": sum(1 for calls in tools.values() if calls),
        "input_tokens": sum(rng.randint(80, 120) for _ in range(n)),
        "output_tokens": 20 * n,
        "errors": int(rng.random() < 0.05),
        "duration_s": 2 * n + 0.5 + rng.random(),
    }
    for tool, calls in tools.items():
        if calls:
            features[f"tool_share:{tool}"] = calls / n
    return features


def cross_validated_auc(reference: Runs, recent: Runs) -> float:
    """The former check: 3-fold cross-validated predictions of the same forest."""
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    _, rows, labels = _matrix(reference, recent)
    folds = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
    forest = _forest().set_params(oob_score=False)
    scores = cross_val_predict(forest, rows, labels, cv=folds, method="predict_proba")[:, 1]
    return float(roc_auc_score(labels, scores))


def out_of_bag_auc(reference: Runs, recent: Runs) -> float:
    return _classifier_test(reference, recent)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=40, help="samples per scenario")
    args = parser.parse_args()
    methods: dict[str, Callable[[Runs, Runs], float]] = {
        "out of bag (now)": out_of_bag_auc,
        "3-fold CV (before)": cross_validated_auc,
    }
    warm_up = random.Random(-1)
    for method in methods.values():  # imports and first-call costs, untimed
        method(
            [run_features(warm_up, 6.0, 0.6) for _ in range(60)],
            [run_features(warm_up, 6.0, 0.6) for _ in range(30)],
        )
    print("| recent runs | method | AUC mean | p95 | max | >= 0.7 | ms per check |")
    print("|---|---|--:|--:|--:|--:|--:|")
    for scenario, (steps, share) in SCENARIOS.items():
        aucs: dict[str, list[float]] = {name: [] for name in methods}
        cpu = dict.fromkeys(methods, 0.0)
        for sample in range(args.samples):
            rng = random.Random(sample)
            reference = [run_features(rng, 6.0, 0.6) for _ in range(200)]
            recent = [run_features(rng, steps, share) for _ in range(100)]
            for name, method in methods.items():
                started = time.process_time()
                aucs[name].append(method(reference, recent))
                cpu[name] += time.process_time() - started
        for name, values in aucs.items():
            ordered = sorted(values)
            print(
                f"| {scenario} | {name} | {statistics.fmean(values):.3f} "
                f"| {ordered[max(0, int(0.95 * len(ordered)) - 1)]:.3f} | {ordered[-1]:.3f} "
                f"| {sum(v >= THRESHOLD for v in values)}/{len(values)} "
                f"| {cpu[name] / len(values) * 1000:.0f} |"
            )


if __name__ == "__main__":
    main()
