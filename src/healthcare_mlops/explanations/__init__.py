"""Why a member's predicted charges are what they are: exact additive contributions per model input.

``contributions`` computes them (linear model: coefficient x distance from the training
mean; tree models: TreeSHAP) on the model's encoded features and folds them into the five
inputs; ``reasons`` turns them into words. See docs/definitions.md, "Explanations".
"""
