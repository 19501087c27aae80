"""The `forge` console script; bot.cli.main holds its verbs."""

from __future__ import annotations

import gc


def main() -> int:
    """Run `forge …` with the cyclic collector paused while forge loads.

    Start-up builds some 300 modules' classes and frees none of them, so the collector's passes
    then are pure cost (about a twentieth of `forge run help`). The quick verbs (help, manifest)
    end with it paused; the others turn it back on before their work.
    """
    gc.disable()
    from bot.cli.main import main as forge

    return forge()
