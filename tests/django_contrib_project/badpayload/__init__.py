"""An app with a callback task whose payload class needs a field the model lacks."""
