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
        version: bool = typer.Option(
            False,
            "--version",
            is_eager=True,
            callback=_print_version,
            help="Print the installed Serifu distributions' versions and exit.",
        ),
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


def _print_version(value: bool) -> None:
    """``serifu --version``: serifu's version, then every plugin distribution's."""
    if not value:
        return
    from serifu import __version__, plugins

    typer.echo(f"serifu {__version__}")
    seen = {"serifu"}
    for provider in plugins.state().providers.values():
        if provider.name not in seen:
            seen.add(provider.name)
            typer.echo(f"{provider.name} {provider.version}")
    raise typer.Exit(0)


def _usage_error(exc: Exception) -> int | None:
    """The exit code of a command-line usage error (click's ``ClickException``), else None.

    Recognised by its interface (``show()`` and ``exit_code``), not by a private import:
    typer vendors click under a private module name that changes between releases.
    """
    code = getattr(exc, "exit_code", None)
    if callable(getattr(exc, "show", None)) and isinstance(code, int):
        return code
    return None


IMPORT_NAMES = {"sklearn": "scikit-learn", "huggingface_hub": "huggingface-hub"}
"""Import names that differ from their distribution's name."""


def missing_extra_message(exc: ModuleNotFoundError) -> str | None:
    """For a library of one of serifu's extras that is not installed: what to install."""
    import re
    from importlib import metadata

    from packaging.requirements import Requirement

    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    module = (exc.name or "").split(".")[0]
    if not module:
        return None
    wanted = norm(IMPORT_NAMES.get(module, module))
    try:
        extras = metadata.metadata("serifu").get_all("Provides-Extra") or []
        requires = metadata.requires("serifu") or []
    except metadata.PackageNotFoundError:
        return None
    for raw in requires:
        req = Requirement(raw)
        if norm(req.name) != wanted or req.marker is None:
            continue
        for extra in extras:
            if extra != "all" and req.marker.evaluate({"extra": extra}):
                return (
                    f"this needs {req.name}, which is not installed; it comes with "
                    f"serifu[{extra}]: pip install 'serifu[{extra}]'"
                )
    return None


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
    except (typer.Abort, KeyboardInterrupt):
        typer.echo("Interrupted.", err=True)
        code = 130
    except ModuleNotFoundError as exc:
        message = None if debug else missing_extra_message(exc)
        if message is None:
            raise
        fail(message)
        code = 2
    except Exception as exc:
        usage = _usage_error(exc)
        if usage is None:
            raise
        exc.show()  # type: ignore[attr-defined]
        code = usage
    if argv is None:
        sys.exit(code)
    return code
