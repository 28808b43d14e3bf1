"""Monitoring: drift, demographic shift, performance and fairness over time, alerts, retraining."""
