"""From a command line to running jobs: the argument list rewritten (:mod:`.arguments`), every job
composed and checked before anything is written (:mod:`.checks`, :mod:`.run_folders`), and the
task function Hydra runs for each job (:mod:`.task`). ``rlrun.cli`` and ``rlrun.api`` call these."""
