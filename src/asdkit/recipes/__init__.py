"""Recipes: YAML run configurations that follow published systems (``asdkit recipes`` lists them)."""
