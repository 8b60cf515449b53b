"""The algorithms' config classes as :func:`rlrun.algos.registry.configs` reads them, without
importing the algorithm modules or torch; here so that a composed config (whose nodes name their
class) pickles and unpickles in any process, as a sweep launcher or an async env's worker does."""

from rlrun.algos.registry import configs as _configs

globals().update({config.__name__: config for config in _configs().values()})
