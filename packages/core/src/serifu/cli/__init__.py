"""The ``serifu`` command line.

Commands come from plugins through ``register_commands`` (the built-in ones too), so
``serifu --help`` shows whatever is installed. Errors meant for users print one
paragraph and exit 2; ``--debug`` (or ``SERIFU_DEBUG=1``) shows the traceback instead.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

import typer
from typer._click.exceptions import ClickException

from serifu.errors import SerifuError


def _debug_requested(argv: Sequence[str]) -> bool:
    return "--debug" in argv or os.environ.get("SERIFU_DEBUG", "") not in ("", "0")


def build_app() -> typer.Typer:
    """The root Typer app with every plugin's commands added."""
    from serifu import plugins

    app = typer.Typer(
        name="serifu",
        help="Serifu: turn a game character's script lines into a role-play chatbot.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        rich_markup_mode=None,
    )

    @app.callback()
    def _root(
        debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors."),
    ) -> None:
        """Serifu: turn a game character's script lines into a role-play chatbot."""

    st = plugins.state()
    for impl in st.pm.hook.register_commands.get_hookimpls():
        try:
            impl.function(cli=app)
        except Exception as exc:  # a broken plugin must not break the CLI
            st.failed.append(
                plugins.Failure(
                    impl.plugin_name, f"register_commands raised {type(exc).__name__}: {exc}"
                )
            )
    return app


def apply_thread_cap() -> None:
    """Honour ``SERIFU_THREADS``: the number of CPU threads torch may use.

    Set as ``OMP_NUM_THREADS``/``MKL_NUM_THREADS`` so torch picks it up when (and only if)
    a command imports it; a torch already imported (in-process callers) is capped directly.
    """
    value = os.environ.get("SERIFU_THREADS", "").strip()
    if not value:
        return
    if not value.isdigit() or int(value) < 1:
        raise SerifuError(f"SERIFU_THREADS must be a positive whole number, not {value!r}")
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[name] = value
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(int(value))


def fail(message: str) -> None:
    """Print a user-facing error paragraph to stderr."""
    typer.echo(f"Error: {message}", err=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``serifu`` script; returns (and exits with) the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = _debug_requested(args)
    code = 0
    try:
        apply_thread_cap()
        command = typer.main.get_command(build_app())
        result = command.main(args=args, prog_name="serifu", standalone_mode=False)
        code = result if isinstance(result, int) else 0
    except SerifuError as exc:
        if debug:
            traceback.print_exc()
        fail(str(exc))
        code = exc.exit_code
    except typer.Exit as exc:
        code = exc.exit_code
    except ClickException as exc:
        exc.show()
        code = exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("Interrupted.", err=True)
        code = 130
    if argv is None:
        sys.exit(code)
    return code
