"""What a trial of a hyper-parameter search returns: a finite objective, or TrialFailed (Optuna: FAILED)."""

import math

import pytest

from avrnn.training import sweeps
from avrnn.training.sweeps import TrialFailed, objective


def test_outside_a_search_the_objective_is_returned_as_it_is(monkeypatch):
    monkeypatch.setattr(sweeps, "in_optuna_search", lambda: False)
    assert objective({"best": 3.5}, "best") == 3.5
    assert math.isnan(objective({}, "best"))  # a single run without validation: nothing to optimise


@pytest.mark.parametrize("metrics,words", [({}, "no validation ran"), ({"best": float("nan")}, "best = nan"),
                                           ({"best": float("inf")}, "best = inf"), ({"best": -float("inf")}, "best = -inf")])
def test_inside_a_search_a_missing_or_non_finite_objective_fails_the_trial(monkeypatch, metrics, words):
    monkeypatch.setattr(sweeps, "in_optuna_search", lambda: True)
    with pytest.raises(TrialFailed, match=words):
        objective(metrics, "best")
    assert objective({"best": -12.5}, "best") == -12.5
