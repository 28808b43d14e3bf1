"""Where a registered version's artifacts live in its MLflow run, named once.

Training writes them (tasks/model_training.py); governance, monitoring and batch scoring
read them. The risk score's reference quantiles travel inside the pyfunc itself.
"""

CHAMPION, CHALLENGER = "champion", "challenger"      # the registry aliases governance moves
PROMOTION_PENDING = "approved, promotion running"    # a version's status: approved; model_governance moves the alias

REFERENCE_ARTIFACT_DIR = "reference"
EVALUATION_ARTIFACT_DIR = "evaluation"
TRAINING_REFERENCE_FILE = "training_reference.json"
REFERENCE_SAMPLE_FILE = "reference_sample.parquet"
OOF_EVIDENCE_FILE = "oof_evidence.parquet"   # group columns, actual, OOF predicted: no member rows
GROUP_METRICS_FILE = "group_metrics.json"
TRAINING_REFERENCE_PATH = f"{REFERENCE_ARTIFACT_DIR}/{TRAINING_REFERENCE_FILE}"
