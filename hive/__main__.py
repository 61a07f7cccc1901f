import sys

from hive.cli import main

__all__ = []


sys.exit(main())
