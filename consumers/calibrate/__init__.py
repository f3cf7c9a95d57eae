"""The calibration job: clean texts -> threshold update -> file and/or thresholds topic."""
