"""The reference central API: what the demo and the HIL rig sync to.

A FastAPI app (``app.py``) over a storage interface (``storage.py``, SQLite by default), served
over HTTPS by uvicorn (``server.py``), with a command line (``__main__.py``). The contract is
docs/openapi.json (generated from this app and tested to match) and docs/api.md.
"""
