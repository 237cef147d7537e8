"""handwritten-digits: experiment-tracked recognition of hand-written digits."""

import os
import time

# When the command started (as near as Python lets us see it): startup time is measured from here.
STARTED = time.time()

# TensorFlow's C++ start-up chatter (CPU feature notes, oneDNN) hides the run's own output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


class UserError(Exception):
    """A mistake the user can fix (bad override, missing file, strict mode): one line, non-zero exit."""
