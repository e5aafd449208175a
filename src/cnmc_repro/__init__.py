"""Reproduction suite for "Leukemia Classification of Microscopic Images Using Deep Learning
Techniques" (B.Tech report, IIT Indore, 2019) on the C-NMC 2019 dataset.

The modules follow the data flow of the suite:

    spec -> dataset/synthetic -> prepare -> batches/splits -> models -> train -> metrics
         -> store -> compare -> report
"""

__version__ = "0.1.0"
