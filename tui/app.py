"""The tfund-tui app: start-up, the session, opening the screens, and the keys that work everywhere.

The app owns the session (tui/session.py: the settings, the UI's copy of the context, the engine
controller whose thread runs the sampler) and hands it to the screens. It starts loading once the
first frame is on screen, so torch and transformers never delay that frame. Every screen is opened
here (`open_screen`, `show_error`, help): the keys, the palette and the lessons come to one place.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import ModalScreen, Screen
from textual.widgets import Footer

from engine.events import SamplingConfig
from engine.model.blocklab import BlockLabConfig
from engine.views.export import ExportError, export_bundle
from tui.keys import QUIT_HELP_SAVE
from tui.lessons import LESSON_PENDING, LESSONS, open_lesson
from tui.messages import ExportWritten
from tui.options import DEFAULT_EXPORT_DIR, DEFAULT_PROMPT, SessionOptions
from tui.screens.attribution import AttributionScreen
from tui.screens.block_lab import BlockLabScreen
from tui.screens.compare import CompareScreen
from tui.screens.error import ErrorScreen
from tui.screens.heads import HeadsScreen
from tui.screens.help import HelpScreen
from tui.screens.main import MainScreen
from tui.screens.models import ModelPicker
from tui.screens.representations import RepresentationsScreen
from tui.screens.tokenize import TokenizeScreen
from tui.screens.too_small import TooSmallScreen, too_small
from tui.session import Session
from tui.svg_export import portable_svg
from tui.widgets.lesson_box import COMPACT_HEIGHT, LessonBox, LessonCard, WayIn, card_place, card_texts
from tui.widgets.pane import ExplainsPanes

SCREENS = {  # open_screen's names
    "block_lab": BlockLabScreen,
    "compare": CompareScreen,
    "tokenize": TokenizeScreen,
    "all_heads": HeadsScreen,
    "attribution": AttributionScreen,
    "representations": RepresentationsScreen,
}
SCREENS_WITH_KEYS = (
    MainScreen,
    BlockLabScreen,
    CompareScreen,
    TokenizeScreen,
    HeadsScreen,
    AttributionScreen,
    RepresentationsScreen,
)  # each declares HELP_TITLE and BINDINGS


class TfundApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "tfund"
    HELP_TITLE = "Anywhere"
    BINDINGS = [  # the screens show these first in their footers (tui.keys.QUIT_HELP_SAVE); here for the modals
        *QUIT_HELP_SAVE,
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),  # what a terminal user expects; the trace is flushed on exit
        Binding("left_parenthesis", "lesson(-1)", "Previous lesson", show=False),
        Binding("right_parenthesis", "lesson(1)", "Next lesson", show=False),
        Binding("W", "lesson_card('why')", "The open lesson: why it behaves so", show=False),
        Binding("C", "lesson_card('check')", "The open lesson: a question to check yourself (again: its answer)", show=False),
    ]
    LESSON_REFRESH_S = 0.25  # how often the open lesson's observation is computed again
    HANGUP_CHECK_S = 1.0  # how often the app checks that its terminal is still there

    def __init__(self, options: SessionOptions, palette: str | None = None) -> None:
        """`palette`: "color" or "shade" to override what the terminal supports (None follows it)."""
        super().__init__()
        self.options = options
        self.palette = palette
        self.session = Session(options, post=self.deliver, notify=self.notify)
        self.main_screen = MainScreen(self.session)  # the engine's messages go to it (deliver)
        self.lesson: int | None = None  # the open lesson's index in LESSONS
        self.last_lesson = 0  # G opens this one again
        self.lesson_start: str | None = None  # the open lesson's first observation: done once it changed
        self.lesson_card: str | None = None  # the card W or C opened: "why", "check", "answer" (None: none)
        self.figures_saved = 0  # files e wrote this session (the reflection lesson counts them)
        self.frame_callbacks: list = []  # to call once the next frame has been handed to the terminal

    def get_default_screen(self) -> Screen:
        return self.main_screen

    def deliver(self, message) -> None:
        """The engine thread's messages: to the main screen, which hands each one to the session and draws it."""
        self.main_screen.post_message(message)

    @property
    def shade(self) -> bool:
        """Shade characters instead of colour: asked for, NO_COLOR, or a 16-colour terminal."""
        if self.palette is not None:
            return self.palette == "shade"
        return self.no_color or self.console.color_system in (None, "standard", "windows")

    def after_next_frame(self, callback) -> None:
        """Call `callback` (on the UI thread) once the next frame is written: MainScreen draws a new token alone first."""
        self.frame_callbacks.append(callback)

    def post_display_hook(self) -> None:
        callbacks, self.frame_callbacks = self.frame_callbacks, []
        for callback in callbacks:
            self.call_later(callback)

    def on_ready(self) -> None:
        """The first frame is on screen (the main screen shows its loading state): now load. Until a lesson is
        opened, the main screen says how to start learning (go_to_lesson removes it)."""
        self.session.start_loading()
        self.check_size(self.size)
        if self.lesson is None:
            self.main_screen.mount(WayIn(), before=self.main_screen.query_one(Footer))
        self.set_interval(self.LESSON_REFRESH_S, self.show_lesson)
        if os.name == "posix" and not self.is_headless and sys.__stdin__ is not None and sys.__stdin__.isatty():
            self.set_interval(self.HANGUP_CHECK_S, self.exit_if_the_terminal_hung_up)

    def on_resize(self, event) -> None:
        self.check_size(event.size)

    def check_size(self, size) -> None:
        """Below 80×24 a notice covers the screens (they are kept as they were); it goes once the terminal grows."""
        notices = [screen for screen in self.screen_stack if isinstance(screen, TooSmallScreen)]
        if too_small(size):
            if notices:
                notices[0].show(size)
            else:
                self.push_screen(TooSmallScreen(size))
        elif notices and self.screen is notices[0]:
            self.pop_screen()

    def exit_if_the_terminal_hung_up(self) -> None:
        """The terminal went away without a SIGHUP (its pseudo-terminal closed by a program that did not make
        it ours): Textual's input thread would then read end-of-file in a loop at 100% of a core, forever.
        Quit as `q` does instead: the trace is closed, and nothing is left running."""
        import termios  # POSIX only

        try:
            termios.tcgetattr(sys.__stdin__.fileno())
        except (OSError, termios.error):
            self.exit()

    # ---- opening screens: every key, palette entry and lesson that opens one comes here ---------
    def open_screen(self, name: str, lab: BlockLabConfig | None = None, model_b: str | None = None, quantize_b: str | None = None) -> None:
        """`name`: block_lab (from `lab`, else the notebook's block), compare (B on `model_b`, quantized by `quantize_b`:
        then at A's temperature), tokenize, all_heads, representations or attribution.

        Each screen is given what it reads (the session, or plain data); it asks the session for results.
        Nothing opens while that screen is shown already, or while what it needs is missing (said once).
        """
        if isinstance(self.screen, SCREENS[name]):
            return
        session = self.session
        if name == "block_lab":
            self.push_screen(BlockLabScreen(session, lab))
        elif name == "all_heads":
            if session.model_info is None or not session.transcript.positions:
                session.engine.say("All heads needs the context's attention: the model is not loaded yet.", "warning")
                return
            transcript = session.transcript
            ids = [p.token_id for p in transcript.positions]
            self.push_screen(
                HeadsScreen(transcript.rows, transcript.pieces, ids, self.shade, session, (session.shown_layer, session.shown_head or 0))
            )
        elif session.needs_model():
            return
        elif name == "compare":
            same_temperature = session.settings.temperature if model_b or quantize_b else None  # two models: compared alike
            self.push_screen(
                CompareScreen(
                    session.model,
                    session.prompt,
                    session.settings,
                    self.shade,
                    self.options.allow_pickle,
                    same_temperature,
                    model_b,
                    quantize_b,
                )
            )
        elif name == "tokenize":
            others = {} if session.model_name == "toy" else {"toy": toy_tokenizer()}  # the toy's beside a real model's
            self.push_screen(TokenizeScreen(session.model.tokenizer, session.model_name, None, others))  # a decoder: no encoder attention
        elif name == "representations":
            positions = session.transcript.positions
            first_generated = len(positions) - sum(p.generated for p in positions)  # the generated tokens are the context's end
            ids = [p.token_id for p in positions]
            engine, model = session.model_info.engine, session.model  # the engine the session runs: no second copy of the weights
            get_net = partial(model.net_for, engine)
            knocked = tuple(a.label for a in session.ablations)
            self.push_screen(RepresentationsScreen(get_net, ids, session.transcript.pieces, first_generated, self.shade, knocked))
        elif not session.transcript.candidates:
            session.engine.say("Attribution needs the next token's candidates: none yet.", "warning")
        else:
            ids = [p.token_id for p in session.transcript.positions]
            self.push_screen(AttributionScreen(session, ids, session.transcript.candidates))

    def action_pick_model(self) -> None:
        """ctrl+o: the model picker; its choice is opened by the session (the model in use stays until it is ready)."""
        if not isinstance(self.screen, ModelPicker):
            self.push_screen(ModelPicker(self.session.model_name), self.open_model)

    def open_model(self, name: str | None) -> None:
        if name is not None:
            self.session.switch_model(name)

    def action_open_screen(self, name: str) -> None:
        """A key or palette entry that opens a screen ("app.open_screen('compare')")."""
        self.open_screen(name)

    def show_error(self, title: str, text: str) -> None:
        """The error modal over whatever is shown; the app stays up."""
        self.push_screen(ErrorScreen(title, text))

    # ---- guided lessons ----------------------------------------------------------------------
    def action_lessons(self) -> None:
        """G: open the lesson last seen (the first at the start), or close the one open."""
        if self.lesson is None:
            self.go_to_lesson(self.last_lesson)
        else:
            self.lesson = None
            self.lesson_card = None
            self.main_screen.remove_class("-lesson-below")
            for screen in self.screen_stack:
                screen.query(LessonBox).remove()
                screen.query(LessonCard).remove()

    def action_lesson(self, direction: int) -> None:
        """( and ): the previous or next lesson (the first, when none is open)."""
        self.go_to_lesson(0 if self.lesson is None else max(0, min(len(LESSONS) - 1, self.lesson + direction)))

    def go_to_lesson(self, index: int) -> None:
        self.main_screen.query(WayIn).remove()
        self.lesson = self.last_lesson = index
        self.lesson_start, self.lesson_card = None, None
        open_lesson(self, LESSONS[index])
        self.call_after_refresh(self.show_lesson)

    def show_lesson(self) -> None:
        """The open lesson's box on the screen shown (it follows the learner between screens), with its observation now."""
        if self.lesson is None or not self.screen_stack:  # none open, or the app is closing
            return
        screen = self.screen
        if isinstance(screen, ModalScreen):
            return
        boxes = screen.query(LessonBox)
        box = boxes.first() if boxes else None
        if box is None:
            box = LessonBox()
            screen.mount(box)
        lesson = LESSONS[self.lesson]
        observation = lesson.observe(self)
        on_its_screen = isinstance(screen, SCREENS[lesson.screen] if lesson.screen else MainScreen)
        if self.lesson_start is None and on_its_screen and not observation.startswith(LESSON_PENDING):
            self.lesson_start = observation
        done = self.lesson_start is not None and observation != self.lesson_start
        compact = self.size.height < COMPACT_HEIGHT
        box.show(self.lesson, len(LESSONS) - 1, lesson, observation, done, compact)
        self.main_screen.set_class(compact and bool(self.main_screen.query(f"#bottom #{lesson.pane}")), "-lesson-below")
        self.show_lesson_card(screen)

    def action_lesson_card(self, kind: str) -> None:
        """W: the open lesson's why (again: hide); C: its check, then the answer, then hide."""
        if self.lesson is None:
            self.notify("Open a lesson first (G).", timeout=3)
            return
        if kind == "why":
            self.lesson_card = None if self.lesson_card == "why" else "why"
        else:
            self.lesson_card = {"check": "answer", "answer": None}.get(self.lesson_card or "", "check")
        self.show_lesson()

    def show_lesson_card(self, screen: Screen) -> None:
        """The card W or C opened, over the panes the lesson does not talk about (lesson_box.card_place)."""
        cards = screen.query(LessonCard)
        card = cards.first() if cards else None
        if self.lesson_card is None:
            if card is not None:
                card.remove()
            return
        lesson = LESSONS[self.lesson]
        compact = self.size.height < COMPACT_HEIGHT
        title, texts, subtitle = card_texts(lesson, self.lesson_card, compact)
        panes = screen.query(f"#{lesson.pane}")
        keep = panes.first().region if panes else None
        footer = screen.query(Footer)
        bottom = footer.first().region.y if footer else screen.size.height
        place, text = card_place(screen.size.width, bottom, keep, texts)
        if card is None:
            card = LessonCard()
            screen.mount(card)
        if card.shown != (title, text, place):
            card.shown = (title, text, place)
            card.border_title, card.border_subtitle = title, subtitle
            card.update(text)
            card.styles.width, card.styles.max_height = place.width, place.height
            card.styles.offset = place.offset

    # ---- help, explanations and the command palette -----------------------------------------
    def action_help(self) -> None:
        """Every screen's keys, the keys that work anywhere and the glossary; the calling screen's keys first."""
        if isinstance(self.screen, HelpScreen):
            return
        here = type(self.screen) if type(self.screen) in SCREENS_WITH_KEYS else MainScreen  # a modal: the main screen's
        others = [screen for screen in SCREENS_WITH_KEYS if screen is not here]
        own = {screen: [b for b in screen.BINDINGS if b not in QUIT_HELP_SAVE] for screen in SCREENS_WITH_KEYS}  # those: "Anywhere"
        anywhere = [*self.BINDINGS, Binding("ctrl+p", "command_palette", "Command palette")]
        self.push_screen(HelpScreen((here.HELP_TITLE, own[here]), (self.HELP_TITLE, anywhere), [(s.HELP_TITLE, own[s]) for s in others]))

    def action_explain(self) -> None:
        """E: the focused pane's explanation, on every screen with panes (tui.widgets.pane.ExplainsPanes)."""
        if isinstance(self.screen, ExplainsPanes):
            self.screen.toggle_explanation()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's own commands but its Keys panel and screenshot, which ours replace; the main screen's."""
        yield from (command for command in super().get_system_commands(screen) if command.title not in ("Keys", "Screenshot"))
        main = self.main_screen
        for title, does, action in main.PALETTE:
            yield SystemCommand(title, does, lambda action=action: main.run_action(action))
        yield SystemCommand("Lessons", "Guided lessons that follow the notebook; ( and ) move between them (G)", self.action_lessons)
        yield SystemCommand("Keys", "Every key, and what the symbols on screen mean (?)", self.action_help)
        yield SystemCommand("Screenshot", "Save this screen as SVG, with its figures as data (e)", self.action_export)

    # ---- saving the figures ------------------------------------------------------------------
    def action_export(self) -> None:
        """`e`: the screen as SVG and its figures as data (each screen's `figures()`), into the export folder."""
        figures = getattr(self.screen, "figures", None)
        if figures is None:
            self.notify("Nothing to save here; close this (escape) and press e on the screen you want to save.", timeout=5)
            return
        svg = portable_svg(self.export_screenshot(title=f"tfund · {self.session.model_name}"))  # no web font
        self.write_export(svg, figures())

    @work(thread=True, exit_on_error=False, group="export")
    def write_export(self, svg: str, figures: dict) -> None:
        """Runs in a thread (a slow disk must not freeze the UI)."""
        try:
            self.post_message(ExportWritten(export_bundle(self.options.export_dir, svg=svg, **figures), None))
        except ExportError as error:
            self.post_message(ExportWritten([], str(error)))

    def on_export_written(self, message: ExportWritten) -> None:
        if message.error:
            self.notify(f"Could not save the figures: {message.error}.", severity="error", timeout=8)
        else:
            self.figures_saved += len(message.paths)
            folder = message.paths[0].parent if message.paths else self.options.export_dir
            self.notify(f"Saved {len(message.paths)} files to {folder}", title="Figures saved", timeout=8)


def toy_tokenizer() -> Any:
    """The toy's tokenizer (tokenizer.json through `tokenizers`: milliseconds, no transformers)."""
    from engine.runtime.sources import TOY_MODEL_DIR
    from engine.runtime.tokenizer import TextTokenizer

    return TextTokenizer.from_dir(TOY_MODEL_DIR)


def make_app(
    model: Any = "toy",
    prompt: str = DEFAULT_PROMPT,
    config: SamplingConfig | None = None,
    trace: Any = None,
    replay: Any = None,
    export_dir: str | os.PathLike = DEFAULT_EXPORT_DIR,
    palette: str | None = None,
    **options: Any,
) -> TfundApp:
    """The app, ready to run. `model`: a name/path, or a LoadedModel (tests pass one to skip loading).

    `trace`: a TraceWriter or a path; `palette`: "color" or "shade" to override the terminal's;
    other options are SessionOptions' (device, engine, allow_pickle, deterministic).
    """
    if isinstance(trace, (str, os.PathLike)):
        from engine.views.trace import TraceWriter

        trace = TraceWriter(Path(trace))
    session = SessionOptions(
        model_source=model,
        prompt=prompt,
        config=replace(config) if config else SamplingConfig(),
        trace=trace,
        replay=Path(replay) if replay is not None else None,
        export_dir=Path(export_dir),
        **options,
    )
    return TfundApp(session, palette=palette)
