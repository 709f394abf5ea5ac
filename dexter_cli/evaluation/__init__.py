"""Evaluation of rendered performances against every human performance of a piece.

metrics
    Whole-piece metrics over codecs: curves, note-level distributions, features, dynamics.
baselines
    What ``dexter evaluate`` compares: dexter, deadpan, linear (the prior alone), external files.
pieces
    The evaluated pieces: a store's split or a list of files, with their human performances.
runner
    ``dexter evaluate``: every renderer on every piece, scored from the file it would write.
statistics
    Ratios to the human-to-human ceiling and paired per-piece comparisons.
report
    The report and its files (results.json, results.csv, plots).
continuity
    Seams at window edges of whole-piece renders.
segments
    ``dexter test``: codec-level segment metrics of a store's test segments.
"""
