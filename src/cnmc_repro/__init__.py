"""Reproduction suite for "Leukemia Classification of Microscopic Images Using Deep Learning Techniques"
(B.Tech report, IIT Indore, 2019) on the C-NMC 2019 dataset.

The subpackages follow the data flow, one stage each:

    benchmarks/*.yaml -> spec -> data -> run -> store -> analysis -> report
    (one file per       (what    (the    (model,  (results/:  (metrics,   (report.html, report.md,
     published table)    to run)  cells)  train)   run records) compare,   show, list)
                                                               audit)

- ``spec``: the spec dataclasses (``schema``), strict YAML loading (``load``, ``strict``), profiles.
- ``data``: C-NMC's layout (``dataset``), the built-in synthetic cells, preparation of section 3.2
  (``prepare``), validation splits and k-fold (``splits``), ``reproduce data check`` (``check``).
- ``run``: the engine (keys, order, store), the experiments of chapter 4, the fastai learner (``trainer``)
  on device-resident batches (``batches``), the architectures (``models``), bayes_opt as in 2019.
- ``store``: run folders written atomically (``folders``) with one typed record each (``record``).
- ``analysis``: metrics, the comparison with the published figures, the audit of the printed digits and
  the regression check of the suite's own figures; plain numbers, no torch.
- ``report``: views and plots of stored runs, rendered through the Jinja2 templates of
  ``report_templates/``.

Shared by every stage: ``errors`` (one-sentence errors), ``paths``, ``atomic`` (atomic writes), ``progress``.
"""

__version__ = "0.1.0"
