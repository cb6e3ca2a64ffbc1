"""The evaluation harness: the report's 111-query protocol, made quantitative.

Evaluators are pure functions over lists of strings (see the modules here); the
built-in plugins in :mod:`serifu.builtin.evaluators` wrap them, and
:mod:`serifu.evaluation.runner` generates replies, runs the evaluators and writes reports.
Heavy libraries (torch, sklearn, fugashi, matplotlib) are imported inside functions.
"""
