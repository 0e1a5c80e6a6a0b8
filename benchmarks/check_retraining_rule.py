"""Check the report's retraining rule on real runs: how many epochs should the winning
configuration train on train+validation before it is scored on the test split?

Runs a shipped study file (default: the quickstart, with ``--seeds`` seeds) into a temporary
storage, then for every study's best COMPLETE trial scores three rules on the test split, each
retrained with the report's 3 training seeds:

* ``one-seed``: the epoch of the trial's best validation score (one training seed, the search's);
  what the report did before issue #10;
* ``mean-3-seeds``: the mean over 3 training seeds of the best validation epoch, each trained
  on the search's train/validation split for ``training.max_epochs`` without early stopping;
* ``scaled``: the one-seed epoch scaled by (train+validation rows) / (train rows), the common
  heuristic "train proportionally longer on more data" (capped at the configuration's epochs).

Prints, per rule, the mean epochs chosen, and against ``one-seed`` the paired difference of
test scores (positive = better) with its Hodges-Lehmann estimate and exact 95% CI, per task.

With ``--storage URL --experiment NAME`` it reads an experiment that already ran instead
(``--study`` is then its study file), optionally only some strategies and seeds, so the rule is
checked on the runs a results page rests on.

Run:  .venv/bin/python benchmarks/check_retraining_rule.py --seeds 3
      .venv/bin/python benchmarks/check_retraining_rule.py --study studies/e17-4d-small.toml \
          --storage sqlite:///storage/e17-4d-small.db --experiment e17-4d-small \
          --strategies grid random --seeds 10
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import optuna

from hpstudy.analysis._verdict import hodges_lehmann, paired_differences
from hpstudy.config import load_config
from hpstudy.data import prepare_final, prepare_task
from hpstudy.report._collect import collect_experiment
from hpstudy.report._test_scores import best_trial
from hpstudy.runner import create_experiment
from hpstudy.scoring import TEST_REPEATS, retrain
from hpstudy.strategies import derive_seed
from hpstudy.training import train

ROOT = Path(__file__).resolve().parent.parent
RULES = ("one-seed", "mean-3-seeds", "scaled")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default=str(ROOT / "studies" / "quickstart.toml"))
    parser.add_argument("--seeds", type=int, default=3, help="seeds run (or read: the first N)")
    parser.add_argument("--storage", help="read this storage's experiment instead of running")
    parser.add_argument("--experiment", help="the experiment to read (with --storage)")
    parser.add_argument("--strategies", nargs="*", help="only these strategies' studies")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.storage:
        config = load_config(Path(args.study))
        data = collect_experiment(args.storage, args.experiment or config.name)
    else:
        text = Path(args.study).read_text().replace("seeds = 1\n", f"seeds = {args.seeds}\n", 1)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(args.study).name
            path.write_text(text)
            config = load_config(path)
            url = f"sqlite:///{tmp}/check.db"
            create_experiment(config, url)
            data = collect_experiment(url, config.name)
    # rule -> task -> direction, {study name: test score}
    scores: dict[str, dict[str, dict[str, float]]] = {r: {} for r in RULES}
    epochs: dict[str, list[int]] = {r: [] for r in RULES}
    direction: dict[str, str] = {}
    for study in data.studies:
        if study.info.seed >= args.seeds or (
            args.strategies and study.info.strategy not in args.strategies
        ):
            continue
        trial = best_trial(study)
        if trial is None:
            continue
        task = config.task(study.info.task)
        direction[task.name] = study.info.direction
        params = {**config.fixed_params(), **trial.params}
        search = prepare_task(task, study.info.seed)
        final = prepare_final(task, study.info.seed)
        one = int(trial.user_attrs.get("best_epoch") or params["epochs"])
        cap = int(params["epochs"])
        bests = [
            train({**params, "epochs": cap}, search, seed=derive_seed(study.info.seed, r, "epochs"),
                  max_epochs=cap, patience=0, device=config.training.device).best_epoch
            for r in range(3)
        ]  # fmt: skip
        n_train = len(search.folds[0].y_train)
        n_final = len(final.folds[0].y_train)
        chosen = {
            "one-seed": one,
            "mean-3-seeds": max(1, round(statistics.mean(bests))),
            "scaled": max(1, min(cap, round(one * n_final / n_train))),
        }
        for rule, n_epochs in chosen.items():
            epochs[rule].append(n_epochs)
            runs = retrain(
                task, study.info.seed, params, n_epochs, device=config.training.device,
                repeats=TEST_REPEATS, data=final,
            ).scores  # fmt: skip
            scores[rule].setdefault(task.name, {})[study.info.name] = statistics.mean(runs)
    print(f"{len(epochs['one-seed'])} studies ({args.seeds} seeds of {Path(args.study).name})")
    if not epochs["one-seed"]:
        return
    for rule in RULES:
        print(f"{rule}: mean epochs {statistics.mean(epochs[rule]):.1f}")
    for rule in RULES[1:]:
        for task_name, by_study in scores[rule].items():
            base = scores["one-seed"][task_name]
            keys = sorted(by_study)
            d = paired_differences(
                dict(enumerate(by_study[k] for k in keys)),
                dict(enumerate(base[k] for k in keys)),
                direction[task_name],
            )
            ci = hodges_lehmann(d)
            wins = sum(x > 0 for x in d)
            print(
                f"{rule} vs one-seed on {task_name}: {ci.estimate:+.4g} [{ci.low:+.4g}, {ci.high:+.4g}] "
                f"({100 * ci.level:.1f}% CI, {len(d)} studies, better in {wins}, worse in {sum(x < 0 for x in d)})"
            )


if __name__ == "__main__":
    main()
