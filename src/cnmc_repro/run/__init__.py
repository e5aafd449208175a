"""Run: model -> train. Takes resolved specs and cells and gives trained runs: the engine keys and orders them,
the experiments of chapter 4 fit fastai learners (``trainer``) on device-resident batches (``batches``)."""
