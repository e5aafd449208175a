"""Command line of the reproduction suite: ``python -m reproduce <command>``. Logic lives in ``cnmc_repro``."""
