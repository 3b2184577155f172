"""Figures and HTML reports of training runs, evaluations and sweeps.

They draw from plain rows and arrays and import only the library core, so the training and the
evaluation packages can both use them without importing each other.
"""
