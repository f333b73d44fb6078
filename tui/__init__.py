"""tfund's terminal UI (textual). Importing it sets Textual's frame-rate ceiling, which Textual reads when
it is imported, unless the user set one: at the default 60, a repaint asked for just after another
waited 15-20 ms for Textual's repaint timer (a step draws its token first and the other panes just
after: those came 30-40 ms after the key instead of ~20). Frames are still drawn only when something
changed; a run redraws at most controller.RUN_BATCHES_PER_SECOND times a second."""

import os

os.environ.setdefault("TEXTUAL_FPS", "120")
