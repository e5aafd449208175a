"""Store: the run folders under ``results/``. Takes what a run measured and gives one folder per run, written
atomically, with its typed record (``record``), and finds finished runs again by their key."""
