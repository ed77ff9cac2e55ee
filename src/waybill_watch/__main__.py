"""``python -m waybill_watch``."""

import sys

from waybill_watch.cli import main

sys.exit(main())
