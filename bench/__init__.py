"""Benchmarks, run on demand: ``python -m bench [--quick]`` (or ``make bench``).

Each module measures one thing against the target in issue 6 and returns a
``Section``; the runner (``__main__``) writes them, with the machine and the
commands, to ``docs/benchmarks.md``. Numbers from shared machines are noisy,
so each benchmark compares ratios measured in the same run.
"""
