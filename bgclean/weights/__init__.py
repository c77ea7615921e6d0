"""Model weights: registry of known files, a verified cache, and format converters."""
