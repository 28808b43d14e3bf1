"""Feature definitions: bands, categories and the de-identification rules, defined once."""
