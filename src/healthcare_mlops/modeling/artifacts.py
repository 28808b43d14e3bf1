"""Where a registered version's artifacts live in its MLflow run, named once.

Training writes them (tasks/model_training.py); governance, monitoring and batch scoring
read them. The risk score's reference quantiles travel inside the pyfunc itself.
"""

CHAMPION, CHALLENGER = "champion", "challenger"      # the registry aliases governance moves
PROMOTION_PENDING = "approved, promotion running"    # a version's status: approved; model_governance moves the alias

REFERENCE_ARTIFACT_DIR = "reference"
EVALUATION_ARTIFACT_DIR = "evaluation"
TRAINING_REFERENCE_FILE = "training_reference.json"
# No artifact holds member rows: the reference is counts per value and bin, the group
# checks' evidence is bootstrap sums per group (governance/group_evidence.py).
REFERENCE_COUNTS_FILE = "reference_counts.parquet"
GROUP_EVIDENCE_FILE = "group_evidence.parquet"
GROUP_METRICS_FILE = "group_metrics.json"
# The label-free MAE estimate's loss models (monitoring/performance_estimate.py), fitted on the
# held-out rows at training time and pickled like the model itself; versions trained before have none.
PERFORMANCE_ESTIMATOR_FILE = "performance_estimator.pkl"
TRAINING_REFERENCE_PATH = f"{REFERENCE_ARTIFACT_DIR}/{TRAINING_REFERENCE_FILE}"
# Run metrics: each input's mean |contribution| in USD over the training frame (the global importance).
IMPORTANCE_METRIC_PREFIX = "importance_usd_"
