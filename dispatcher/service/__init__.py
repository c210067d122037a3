"""Use cases: what the API, the console and the command line call."""
