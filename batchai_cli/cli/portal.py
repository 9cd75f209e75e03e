"""`batchai portal`: a local web UI over the same state and storage the CLI reads."""

from __future__ import annotations

import contextlib
import socket
import sys

import click

from batchai_cli.cli.options import BatchAICommand, pass_app

LOOPBACK = ("127.0.0.1", "localhost", "::1")


@click.command("portal", cls=BatchAICommand)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback unless told).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=8008, show_default=True, help="Port; 0 picks a free one."
)
@click.option("--open", "open_browser", is_flag=True, help="Open the portal in a web browser.")
@pass_app
def portal(app, host, port, open_browser):
    """Jobs, logs and output files in a browser.

    The Azure portal's job views, served locally, over the same state and storage the CLI reads.
    It prints its URL with a random access token (as Jupyter does); every request needs it. Stop
    it with Ctrl-C.

    \b
    Examples:
      Start the portal on http://127.0.0.1:8008 and open it.
        batchai portal --open
      Pick a free port.
        batchai portal --port 0
    """
    from batchai_cli.cli import terminal
    from batchai_cli.errors import BatchAIError

    try:
        import uvicorn

        from batchai_cli.web.app import build_app, new_token
    except ImportError as exc:
        raise BatchAIError(
            f"The portal needs the 'portal' extra ({exc.name} is missing).",
            hint="pip install 'batchai[portal]'",
        ) from None
    token = new_token()
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        # Listening before the URL is printed: a browser that opens it at once is queued, not refused.
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise BatchAIError(
            f"Cannot listen on {host}:{port}: {exc.strerror}.", hint="Pick another with --port (0: any free port)."
        ) from None
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/?token={token}"
    if host not in LOOPBACK:
        terminal.warning(
            f"The portal listens on {host}, not loopback: anyone who can reach this machine and has the token "
            "can read your jobs' output and terminate them."
        )
    terminal.info("The portal is at this URL (Ctrl-C stops it):")
    click.echo(url)
    sys.stdout.flush()
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    config = uvicorn.Config(build_app(token), log_level="warning", access_log=False, lifespan="off")
    server = uvicorn.Server(config)
    with contextlib.suppress(KeyboardInterrupt):
        server.run(sockets=[sock])
