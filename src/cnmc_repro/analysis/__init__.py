"""Analysis: metrics -> compare -> audit, on plain numbers and without torch. Takes predictions, stored run
records and the specs' published figures; gives the metrics, the comparison with verdicts, the audit of the
printed figures and the regression check of the suite's own figures."""
