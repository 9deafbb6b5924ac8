"""``cloud-runs forge serve``: run a forge in the foreground until Ctrl-C.

Example:
    $ cloud-runs forge serve --port 8765
    forge serving at http://127.0.0.1:8765 (REST API: http://127.0.0.1:8765/api/v3)
"""

from __future__ import annotations

import argparse
from pathlib import Path

from cloud_runs.errors import InputError


def serve(args: argparse.Namespace) -> int:
    """Starts a forge from ``args.root``/``args.host``/``args.port`` and blocks until interrupted."""
    from cloud_runs.forge.forge import Forge

    port = int(getattr(args, "port", 0) or 0)
    if not 0 <= port <= 65535:
        raise InputError(f"--port {port} is not a TCP port", hint="use 0 (any free port) or 1-65535")
    root = getattr(args, "root", None)
    forge = Forge(Path(root) if root else None)
    try:
        forge.start(host=getattr(args, "host", None) or "127.0.0.1", port=port)
    except OSError as e:
        raise InputError(f"cannot listen on {args.host}:{port}: {e.strerror}", hint="pick another --port") from e
    print(f"forge serving at {forge.url} (REST API: {forge.api_url})", flush=True)
    print(f"repositories under {forge.repos_root}; press Ctrl-C to stop", flush=True)
    try:
        forge.wait()
    except KeyboardInterrupt:
        pass
    finally:
        forge.stop()
    return 0
