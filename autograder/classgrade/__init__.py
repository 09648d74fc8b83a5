"""Grading a whole class: ``backprop-kit grade``.

* ``course`` -- a course folder as nbgrader sees it: configuration, submissions, checksums, plans;
* ``plan``   -- one submission's sandboxed run as a value (what it needs, what it found);
* ``worker`` -- what a Dask worker runs: plans, forked from its warm sandbox process;
* ``engine`` -- the coordinator: plans out, verdicts in, each recorded by nbgrader's own autograde;
* ``memory`` -- peak memory of the workers and the run.
"""
