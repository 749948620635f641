"""The ``eventbus demo`` walkthrough: emulator, worker, events flowing, callbacks visible."""

__all__: list[str] = []
