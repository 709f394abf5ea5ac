"""The ``dexter`` command: a Typer app with one short module per subcommand.

Heavy imports (torch, partitura) happen inside the commands so that
``dexter --help`` is instant. A :class:`~dexter_cli.errors.DexterError` becomes
one red line on stderr and exit status 1; so does any unexpected exception (named as
such); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import sys
import traceback

import typer

from .. import __version__
from ..errors import DexterError, DexterWarning
from ._common import STATE, console_err

app = typer.Typer(
    name="dexter",
    help="Learn and control expressive piano performance with diffusion models (DExter).",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"dexter {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks on errors.", metavar=""),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version.", metavar=""),
) -> None:
    """dexter: learn expressive piano performance from aligned data and render it for any score."""
    STATE["debug"] = debug


from . import codec, evaluate, pair, render, test, train  # noqa: E402  (registers the commands)

for _module in (codec, pair, train, test, render, evaluate):
    _module.register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``dexter`` executable."""
    import warnings


    default_show = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None):  # noqa: ANN001
        if issubclass(category, DexterWarning):  # one yellow line, as an error is one red line
            console_err.print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)
        else:
            default_show(message, category, filename, lineno, file, line)

    try:
        with warnings.catch_warnings():
            warnings.showwarning = show
            app(args=argv, prog_name="dexter")
    except DexterError as exc:
        if STATE.get("debug"):
            traceback.print_exc()
        console_err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        console_err.print("[bold red]interrupted[/]")
        sys.exit(130)
    except Exception as exc:  # a bug, or a failure no check foresaw: still one line without --debug
        if STATE.get("debug"):
            traceback.print_exc()
        first = (str(exc).splitlines() or [""])[0]
        console_err.print(f"[bold red]error:[/] unexpected {type(exc).__name__}: {first} "
                          "(rerun with --debug for the traceback, and report it)", highlight=False, soft_wrap=True)
        sys.exit(1)
