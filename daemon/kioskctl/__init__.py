"""``kioskctl``: the field engineer's tool (provision, doctor, status, sensor, camera, outbox,
bundle, sync). The command line lives in ``__main__``; each command is a small module.

Hardware is reached only through :class:`daemon.kioskctl.parts.Parts`, kioskctl's own
composition root, so tests can hand it simulated parts with scripted faults.

May import: everything in ``daemon`` and ``drivers``; ``hil.fingerprint`` only inside
``parts`` for the emulator backend.
"""
