"""An app with a second handler of the shop's event."""
