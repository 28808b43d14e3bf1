"""Model governance: checks with verdicts, champion/challenger promotion, approvals, audit, model card."""
