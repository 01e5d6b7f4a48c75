"""Every signal name the monitors produce, with its unit and meaning: what rule files may name before the
first window has been monitored, what docs/alerts.md lists, and what the dashboard labels its charts with.

A test checks that every name a monitor emits is here, so this list cannot fall behind the monitors.
"""

from __future__ import annotations

SIGNALS: dict[str, str] = {
    # operations, per endpoint (label endpoint) and in total (no endpoint label)
    "request_rate": "requests per second over the window",
    "requests": "requests in the window",
    "latency_p50_ms": "median latency, ms (merged sketch)",
    "latency_p95_ms": "95th percentile latency, ms (merged sketch)",
    "latency_p99_ms": "99th percentile latency, ms (merged sketch)",
    "latency_mean_ms": "mean latency, ms",
    "latency_max_ms": "largest latency, ms",
    "error_rate": "share of requests that failed",
    "errors": "failed requests in the window",
    "error_type_rate": "share of requests that failed with one error type (label error_type)",
    "stage_latency_p95_ms": "95th percentile of a stage's time, ms (label stage)",
    "dropped_calls": "calls the SDK dropped because its queue was full",
    "input_problems": "inputs the SDK could not read (label problem)",
    # data, against the model version's reference (label feature)
    "drift_score": "the drift statistic of a feature against the reference",
    "drift_p_value": "the drift test's p-value (NaN for distances)",
    "drift_detected": "1 when the feature drifted by the default decision rule, else 0",
    "dataset_drift_share": "share of compared features that drifted",
    "dataset_drift": "1 when the share of drifted features reached the dataset threshold",
    "missing_rate": "share of a feature's values that were missing",
    "type_change_rate": "share of a feature's values of another kind than the reference's",
    # predictions (label output)
    "prediction_mean": "mean of a numeric output",
    "positive_rate": "share of predictions of the positive class",
    "class_share": "share of predictions of one class (label class)",
    "confidence_mean": "mean confidence",
    "confidence_p25": "25th percentile of confidence",
    "confidence_p50": "median confidence",
    "confidence_p75": "75th percentile of confidence",
    "low_confidence_rate": "share of predictions below the low-confidence threshold",
    "prediction_diversity": "distinct predictions per request",
    # performance, once labels arrive
    "accuracy": "accuracy of the labelled predictions",
    "accuracy_ci_low": "lower end of accuracy's 95% Wilson interval",
    "accuracy_ci_high": "upper end of accuracy's 95% Wilson interval",
    "precision": "precision (binary: of the positive class; multi-class: macro average)",
    "recall": "recall (binary: of the positive class; multi-class: macro average)",
    "f1": "F1 (binary: of the positive class; multi-class: macro average)",
    "roc_auc": "area under the ROC curve of the score",
    "roc_auc_ci_low": "lower end of ROC AUC's 95% interval (DeLong)",
    "roc_auc_ci_high": "upper end of ROC AUC's 95% interval (DeLong)",
    "rmse": "root mean squared error",
    "mae": "mean absolute error",
    "mae_ci_low": "lower end of MAE's 95% interval",
    "mae_ci_high": "upper end of MAE's 95% interval",
    "labelled_rows": "predictions of the window with a label",
    "accuracy_baseline": "accuracy in the training run's summary",
    "accuracy_drop": "baseline accuracy minus current (positive is worse)",
    "f1_baseline": "F1 in the training run's summary",
    "f1_drop": "baseline F1 minus current (positive is worse)",
    "roc_auc_baseline": "ROC AUC in the training run's summary",
    "roc_auc_drop": "baseline ROC AUC minus current (positive is worse)",
    "rmse_baseline": "RMSE in the training run's summary",
    "rmse_drop": "current RMSE minus baseline (positive is worse)",
    "mae_baseline": "MAE in the training run's summary",
    "mae_drop": "current MAE minus baseline (positive is worse)",
    # ground truth
    "label_pending_rate": "share of the window's predictions still waiting for a label",
    "labelled_share": "share of the window's predictions with a label",
    "label_drift_score": "drift statistic of arriving labels against the reference's target",
    "label_drift_p_value": "p-value of the label drift test",
    "label_drift_detected": "1 when the labels drifted, else 0",
    "label_class_share": "share of arriving labels of one class (label class)",
    # staleness
    "model_age_seconds": "seconds since the model version's training run ended",
    "reference_age_seconds": "seconds since the reference was logged",
    # cost (label llm, and a total without it)
    "tokens": "tokens in the window",
    "input_tokens": "input tokens in the window",
    "output_tokens": "output tokens in the window",
    "cost": "cost in the window",
    "cost_per_request": "cost per request (per LLM call when the window has no endpoints)",
    "cost_per_day": "the window's cost scaled to a day",
    "cost_budget_ratio": "cost per day over the model's daily budget",
    # anomaly detection on KPI streams, from run.watch_anomalies (labels detector, entity)
    "anomaly_score": "a closed window's anomaly score (higher is more anomalous)",
    "anomaly": "1 when the window's anomaly score is above the detector's threshold, else 0",
    "anomaly_threshold": "the detector's calibrated threshold",
    "anomalies": "windows above the threshold in a scoring pass",
    "anomaly_late_rows": "KPI rows that came after their window had been scored (dropped)",
    # the monitors and the alert engine themselves
    "monitor_windows": "windows a monitor pass processed",
    "monitor_lag_seconds": "seconds between now and the end of the newest monitored window",
    "notifier_failures": "notifications a notifier failed to deliver after its retries",
}

SIGNAL_NAMES: frozenset[str] = frozenset(SIGNALS)
