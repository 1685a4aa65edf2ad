import sys

from senorita.cli import main

sys.exit(main())
