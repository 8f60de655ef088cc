"""Names of the MLflow tags kubeloop sets on runs and model versions."""

TRAININGJOB_TAG = "kubeloop.io/trainingjob"  # namespace/name of the TrainingJob
UID_TAG = "kubeloop.io/uid"  # the TrainingJob's metadata.uid
ALGORITHM_TAG = "kubeloop.io/algorithm"
TRIAL_TAG = "kubeloop.io/trial"  # the Optuna trial number of a child run
TRIAL_STATE_TAG = "kubeloop.io/trial-state"  # COMPLETE, PRUNED or FAIL
TRIALS_TAG = "kubeloop.io/trials"  # how many trials completed / were pruned
FAILURE_REASON_TAG = "kubeloop.io/failure-reason"
MESSAGE_TAG = "kubeloop.io/message"
PARITY_TAG = "kubeloop.io/onnx-parity"
CHALLENGE_TAG = "kubeloop.io/challenge"  # the gate's outcome: Passed, FirstModel, NotBeaten, NotComparable
CHALLENGE_CHAMPION_TAG = "kubeloop.io/challenge-champion"  # the champion URI and the version it meant
CHALLENGE_MESSAGE_TAG = "kubeloop.io/challenge-message"  # both scores, in words
FAIRNESS_TAG = "kubeloop.io/fairness"  # the fairness gate's outcome: Passed, Failed, NotEvaluable
FAIRNESS_MESSAGE_TAG = "kubeloop.io/fairness-message"  # the differences, thresholds and worst groups
