import sys

from trackline.cli import main

sys.exit(main())
