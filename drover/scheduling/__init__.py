"""Pure-Python scheduling helpers; ``reference`` is the oracle for ``drover.scheduler_core``."""
