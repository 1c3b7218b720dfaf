"""The touchscreen UI (ARCHITECTURE.md §8): a local web page served by ``kiosk.service`` on
127.0.0.1, rendering the check-in flow's views and sending taps back.

- :mod:`daemon.ui.bridge`   the seam to the flow (``UiBridge``, ``Screen``, tap actions)
- :mod:`daemon.ui.server`   ``create_ui_app(bridge, token=..)``, ``serve_ui(app, port)``
- :mod:`daemon.ui.catalog`  gettext catalogues (en, cy) compiled in memory
- :mod:`daemon.ui.present`  view → what the page receives (server-side text)
- :mod:`daemon.ui.heartbeat` page liveness; :mod:`daemon.ui.shell` runs cage + Chromium
- :mod:`daemon.ui.audio`    spoken prompts from espeak-ng, per screen and language
- :mod:`daemon.ui.preview`  a scripted stand-in flow for tests, screenshots and the bench

Importing this package does nothing (no server, no subprocess). docs/ui.md is the guide.
"""
