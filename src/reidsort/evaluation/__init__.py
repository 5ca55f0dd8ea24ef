"""Evaluation and reports: MOT metrics with TrackEval (``reidsort.evaluation.mot``) and more.

Deliberately empty of imports: each submodule pulls in only what it needs (TrackEval, SciPy, ...),
so importing one kind of evaluation never loads another's dependencies.
"""
