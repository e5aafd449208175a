"""Spec: what to run. Takes the YAML files of ``benchmarks/`` (one per published table or result) and gives
frozen ``Spec`` dataclasses, checked strictly (``load``), and the profiles that shrink them (``profiles``)."""
