"""Condition types and reasons (CamelCase, as the API conventions ask), named once."""

from __future__ import annotations

# condition types
READY = "Ready"
SUCCEEDED = "Succeeded"
DRIFT_DETECTED = "DriftDetected"
PERFORMANCE_DEGRADED = "PerformanceDegraded"  # DriftMonitor with spec.performance
CHALLENGER_GATE = "ChallengerGate"  # TrainingJob with spec.challenge: True when the new version may roll out
FAIRNESS_GATE = "FairnessGate"  # TrainingJob with spec.fairness: True when the model may be registered
PROGRESSING = "Progressing"  # ModelDeployment with a canary: its rollout
AUTOSCALING = "Autoscaling"  # ModelDeployment: whether its HorizontalPodAutoscaler can read its metric

# any kind
INVALID_SPEC = "InvalidSpec"

# ModelDeployment
AVAILABLE = "Available"
PENDING = "Pending"
ROLLING_OUT = "RollingOut"
MODEL_NOT_RESOLVED = "ModelNotResolved"
MODEL_VERSION_CHANGED = "ModelVersionChanged"

# ModelDeployment canary rollout (condition Progressing, and Events)
CANARY_PENDING = "CanaryPending"
FIXED_WEIGHT = "FixedWeight"
STEP_STARTED = "StepStarted"
STEP_PROGRESSING = "StepProgressing"
ANALYSIS_INCONCLUSIVE = "AnalysisInconclusive"
ANALYSIS_FAILED = "AnalysisFailed"
ROLLOUT_PAUSED = "Paused"
PROMOTING = "Promoting"
PROMOTED = "Promoted"
ROLLED_BACK = "RolledBack"
ABORTED = "Aborted"
PROMETHEUS_NOT_CONFIGURED = "PrometheusNotConfigured"
METRICS_UNAVAILABLE = "MetricsUnavailable"
PROMOTION_BLOCKED = "PromotionBlocked"

# TrainingJob (besides its phases, and failure reasons from the trainer or the kubelet)
COMPLETED = "Completed"
DEADLINE_EXCEEDED = "DeadlineExceeded"
OOM_KILLED = "OOMKilled"
FAILED = "Failed"
RESTARTING = "Restarting"  # workers > 1: a failed gang is taken down before all workers start again
GANG_RESTART = "GangRestart"  # the Event of each gang restart

# TrainingJob, condition ChallengerGate
CHAMPION_BEATEN = "ChampionBeaten"
NO_CHAMPION = "NoChampion"
CHAMPION_NOT_BEATEN = "ChampionNotBeaten"
CHAMPION_NOT_COMPARABLE = "ChampionNotComparable"
AWAITING_EVALUATION = "AwaitingEvaluation"
NOT_EVALUATED = "NotEvaluated"

# TrainingJob, condition FairnessGate (also AwaitingEvaluation, NotEvaluated)
FAIRNESS_WITHIN_THRESHOLDS = "FairnessWithinThresholds"
FAIRNESS_THRESHOLD_EXCEEDED = "FairnessThresholdExceeded"
GROUPS_TOO_SMALL = "GroupsTooSmall"

# DriftMonitor
SCHEDULED = "Scheduled"
TARGET_NOT_FOUND = "TargetNotFound"
PAYLOAD_LOGGING_OFF = "PayloadLoggingOff"
DATASET_DRIFT = "DatasetDrift"
NO_DATASET_DRIFT = "NoDatasetDrift"
CHECK_FAILED = "CheckFailed"
RETRAIN_TRIGGERED = "RetrainTriggered"
BELOW_THRESHOLD = "BelowThreshold"  # a metric or fairness difference past its threshold
WITHIN_THRESHOLDS = "WithinThresholds"
PERFORMANCE_NOT_MEASURED = "PerformanceNotMeasured"
