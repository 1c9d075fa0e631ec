"""The promotion gate: per-metric rules; a worse or incomplete candidate is refused."""

from flywheel.evaluation.config import GateConfig, MetricTolerance
from flywheel.evaluation.gate import decide

CFG = GateConfig()  # accuracy must improve by 0.01; perplexity may rise by at most 50%
CHAMP = {"accuracy": 0.62, "perplexity": 18.0}


def test_better_candidate_passes():
    d = decide({"accuracy": 0.80, "perplexity": 26.0}, CHAMP, CFG)
    assert d.promote and d.reasons == []
    assert [round(c.threshold, 4) for c in d.checks] == [0.63, 27.0]  # 18.0 * 1.5


def test_worse_accuracy_is_refused():
    d = decide({"accuracy": 0.55, "perplexity": 17.0}, CHAMP, CFG)
    assert not d.promote and d.reasons == ["accuracy: 0.5500 < 0.6300 (champion 0.6200)"]


def test_improvement_below_min_is_refused():
    assert not decide({"accuracy": 0.625, "perplexity": 18.0}, CHAMP, CFG).promote


def test_perplexity_regression_beyond_tolerance_is_refused():
    d = decide({"accuracy": 0.90, "perplexity": 27.5}, CHAMP, CFG)
    assert not d.promote and d.reasons == ["perplexity: 27.5000 > 27.0000 (champion 18.0000)"]


def test_absolute_tolerance():
    cfg = GateConfig(metrics={"perplexity": MetricTolerance(greater_is_better=False, tolerance=5.0)})
    assert decide({"perplexity": 23.0}, CHAMP, cfg).promote
    assert not decide({"perplexity": 23.5}, CHAMP, cfg).promote


def test_missing_metric_is_refused():
    d = decide({"accuracy": 0.95}, CHAMP, CFG)
    assert not d.promote and d.reasons == ["perplexity: candidate has no value"]


def test_tolerance_allows_a_small_regression():
    cfg = GateConfig(metrics={"accuracy": MetricTolerance(tolerance=0.02)})
    assert decide({"accuracy": 0.605}, CHAMP, cfg).promote
    assert not decide({"accuracy": 0.59}, CHAMP, cfg).promote
