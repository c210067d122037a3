"""The message templates, installed as the package ``dispatcher.templates`` (pyproject.toml maps
this folder there) so that every kind of install finds them through ``importlib.resources``;
this file makes the folder a regular package, which editable installs need to map it."""
