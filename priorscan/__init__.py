"""priorscan core: settings, the error tree, storage plumbing, trust configuration and the command line.

The domain packages (``mpi``, ``imaging``, ``dedupe``) and the edges (``api``) build on this package; it depends on
none of them (the command line imports them lazily).
"""

from priorscan.errors import PriorscanError
from priorscan.settings import Settings, get_settings

__all__ = ["PriorscanError", "Settings", "get_settings", "__version__"]
__version__ = "0.1.0"
