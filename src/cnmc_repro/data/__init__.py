"""Data: the cells. Takes a C-NMC 2019 folder (or writes the built-in synthetic one) and gives ``Cell`` records,
the prepared uint8 images of section 3.2 (cached) and the train/validation splits; ``check`` audits a folder."""
