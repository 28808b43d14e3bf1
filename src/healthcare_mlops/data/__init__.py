"""Patient data: the source contract, the synthetic generator's parameters, scenarios, CSV reading."""
